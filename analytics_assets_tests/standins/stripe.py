"""Stripe API: list charges."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Optional

from .server import Entry, Request, Response, Route, StandIn, Table, epoch_seconds, parse_instant

BRANDS = ["visa", "mastercard", "amex"]
CITIES = [("Berlin", "DE", "10115"), ("Paris", "FR", "75001"), ("Austin", "US", "78701"), ("Leeds", "GB", "LS1 4AP")]


class StripeCharges(StandIn):
    """`GET /v1/charges`: a list object `{"object": "list", "url", "has_more", "data": [...]}`, newest
    first, at most `limit` (1-100, default 10) a page; the next page is asked for with
    `starting_after=<the last object's id>` (there is no cursor in the body: it is the last record's
    `id`). `created` is epoch seconds (an int) and filters with `created[gte]`/`created[gt]`/
    `created[lt]`/`created[lte]`; it never changes, so an update (a refund) leaves a charge in its day.
    Errors are `{"error": {"type", "message", ...}}`; a bad key is 401.

    Substitution: Stripe authenticates with secret API keys; here a bearer token from an OAuth2
    client-credentials endpoint stands in for the key."""

    name = "stripe_charges"
    docs = ("Stripe API: List all charges (GET /v1/charges), `data` + `has_more`, `starting_after` = last "
            "object's id, `created[gte]`/`created[lt]` epoch seconds")
    resources = ("charges",)

    def build(self) -> None:
        self.tables["charges"] = Table(key=lambda e: e.record["id"], moment=lambda r: parse_instant(r["created"]),
                                       touch=lambda r, m: r.__setitem__("created", epoch_seconds(m)), row_key=("id",))
        for moment in self.spread():
            self.tables["charges"].entries.append(self.make_record("charges", moment))

    def make_record(self, resource: str, moment: datetime, parent: Any = None) -> Entry:
        rng, n = self.rng, len(self.tables["charges"].entries) + 1
        amount = rng.randint(50, 250_000)
        refunded = rng.random() < 0.1
        city, country, postal = rng.choice(CITIES)
        return Entry({
            "id": f"ch_3Q{n:06d}{rng.getrandbits(40):010x}",
            "object": "charge",
            "amount": amount,
            "amount_captured": amount,
            "amount_refunded": amount if refunded else 0,
            "balance_transaction": f"txn_3Q{n:06d}",
            "billing_details": {"address": {"city": city, "country": country, "line1": f"{n} Main St",
                                            "line2": None, "postal_code": postal, "state": None},
                                "email": f"buyer{n}@example.com", "name": f"Buyer {n}", "phone": None},
            "captured": True,
            "created": epoch_seconds(moment),
            "currency": rng.choice(["usd", "eur", "gbp"]),
            "customer": rng.choice([None, f"cus_{n:08d}"]),
            "description": rng.choice([None, f"Order {1000 + n}"]),
            "disputed": False,
            "livemode": False,
            "metadata": rng.choice([{}, {"order_id": str(1000 + n)}]),
            "outcome": {"network_status": "approved_by_network", "reason": None, "risk_level": "normal",
                        "risk_score": rng.randint(0, 60), "seller_message": "Payment complete.", "type": "authorized"},
            "paid": True,
            "payment_intent": f"pi_3Q{n:06d}",
            "payment_method_details": {"card": {"brand": rng.choice(BRANDS), "exp_month": rng.randint(1, 12),
                                                "exp_year": rng.randint(2027, 2031),
                                                "last4": f"{rng.randint(0, 9999):04d}"}, "type": "card"},
            "refunded": refunded,
            "status": "succeeded",
        })

    def routes(self) -> list[Route]:
        return [Route("GET", r"/v1/charges", self._charges)]

    def unauthorized(self, request: Request, problem: str) -> Response:
        message = ("You did not provide an API key." if problem == "missing"
                   else "Invalid API Key provided: sk_test_********")
        return Response(401, {"error": {"message": message, "type": "invalid_request_error"}},
                        {"WWW-Authenticate": 'Basic realm="Stripe"'})

    def _charges(self, request: Request, match: Any) -> Response:
        query = request.query
        try:
            limit = int(query.get("limit", 10))
            bounds = {op: int(query[f"created[{op}]"]) for op in ("gt", "gte", "lt", "lte")
                      if f"created[{op}]" in query}
        except ValueError as error:
            return self._invalid(f"Invalid integer: {error}", "limit")
        if not 1 <= limit <= 100:
            return self._invalid("This value must be greater than or equal to 1 and at most 100.", "limit")
        tests = {"gt": int.__gt__, "gte": int.__ge__, "lt": int.__lt__, "lte": int.__le__}
        entries = [e for e in reversed(self.tables["charges"].ordered())
                   if all(tests[op](e.record["created"], value) for op, value in bounds.items())]
        after = query.get("starting_after")
        if after:
            ids = [e.record["id"] for e in entries]
            if after not in ids:
                return Response(400, {"error": {"code": "resource_missing", "param": "starting_after",
                                                "message": f"No such charge: '{after}'",
                                                "type": "invalid_request_error"}})
            entries = entries[ids.index(after) + 1:]
        page = [e.record for e in entries[:limit]]
        return Response(200, {"object": "list", **self.page_body("data", page), "has_more": len(entries) > limit,
                              "url": "/v1/charges"})

    @staticmethod
    def _invalid(message: str, param: str) -> Response:
        return Response(400, {"error": {"message": message, "param": param, "type": "invalid_request_error"}})

    def config(self) -> dict[str, Any]:
        return {
            "client": {"base_url": self.base_url, "auth": self.project_auth()},
            "resource_defaults": {"primary_key": "id", "write_disposition": "merge"},
            "resources": [{
                "name": "charges",
                "endpoint": {
                    "path": "/v1/charges",
                    "params": {"limit": 100},
                    "data_selector": "data",
                    "paginator": {"type": "cursor", "cursor_path": "data[-1].id", "cursor_param": "starting_after",
                                  "has_more_path": "has_more"},
                    "incremental": {"start_param": "created[gte]", "end_param": "created[lt]",
                                    "cursor_path": "created", "value_format": "epoch_seconds"},
                },
            }],
        }

    def plain_config(self, start: datetime, end: datetime) -> Optional[dict[str, Any]]:
        """dlt's `incremental` with integer bounds sends `created[gte]`/`created[lt]` itself."""
        config = self.config()
        config["client"]["auth"] = self.plain_auth()
        config["resources"][0]["endpoint"]["incremental"] = {
            "start_param": "created[gte]", "end_param": "created[lt]", "cursor_path": "created",
            "initial_value": epoch_seconds(start), "end_value": epoch_seconds(end)}
        return config
