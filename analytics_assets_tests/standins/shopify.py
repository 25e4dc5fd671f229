"""Shopify Admin REST API: list orders."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Optional
from zoneinfo import ZoneInfo

from .server import (
    Entry,
    Request,
    Response,
    Route,
    StandIn,
    cursor_table,
    decode_token,
    encode_token,
    iso_offset,
    iso_z,
    link_header,
    parse_instant,
)

VERSION = "2024-10"
ORDERS_PATH = f"/admin/api/{VERSION}/orders.json"
SHOP_ZONE = ZoneInfo("Europe/Paris")  # the shop's time zone: +01:00 in November
FILTERS = ("status", "created_at_min", "created_at_max", "updated_at_min", "updated_at_max", "since_id", "order")
PRODUCTS = [(632910392, "IPod Nano - 8GB", "199.00"), (921728736, "Travel mug", "19.99"),
            (445365074, "Tote bag", "12.50"), (808950810, "Notebook", "7.25")]


class ShopifyOrders(StandIn):
    """`GET /admin/api/2024-10/orders.json`: `{"orders": [...]}`, at most `limit` (<= 250, default 50);
    the next page is an RFC 8288 `Link` header (`rel="next"`, and `rel="previous"` after the first)
    whose URL carries only `limit` and an opaque `page_info`: with `page_info`, any filter parameter
    is refused (400). `updated_at_min`/`updated_at_max` are both inclusive; `status` defaults to
    `open` (`any` for all). Times are in the shop's zone with its offset
    (`2026-11-17T10:12:33+01:00`); money is text (`"199.00"`); `customer`, `line_items` and
    `shipping_address` are nested. Unauthenticated: 401 `{"errors": "[API] Invalid API key or access
    token (unrecognized login or wrong password)"}`.

    Substitution: Shopify reads its token from `X-Shopify-Access-Token`; here from a bearer header.
    Its client-credentials grant lives at `/admin/oauth/access_token`, as here."""

    name = "shopify_orders"
    docs = ("Shopify Admin REST API: Order list (GET /admin/api/2024-10/orders.json), `orders`, Link header "
            "with `page_info`, `updated_at_min`/`updated_at_max` (inclusive), `+01:00` offsets, nested `line_items`")
    resources = ("orders",)
    token_path = "/admin/oauth/access_token"
    scopes = ("read_orders",)

    def build(self) -> None:
        self.tables["orders"] = cursor_table("updated_at", lambda m: iso_offset(m, SHOP_ZONE), ("id",))
        for moment in self.spread():
            self.tables["orders"].entries.append(self.make_record("orders", moment))

    def make_record(self, resource: str, moment: datetime, parent: Any = None) -> Entry:
        rng, n = self.rng, len(self.tables["orders"].entries) + 1
        order_id = 5_500_000_000_000 + n * 131
        created = moment - timedelta(seconds=rng.randint(0, 3 * 86400))
        items: list[dict[str, Any]] = []
        for i, (product_id, title, price) in enumerate(rng.sample(PRODUCTS, rng.randint(1, 3))):
            items.append({"id": order_id * 10 + i, "product_id": product_id, "variant_id": product_id + 1,
                          "title": title, "quantity": rng.randint(1, 4), "price": price,
                          "sku": f"SKU-{product_id}", "taxable": True, "fulfillment_status": None})
        total = sum(float(item["price"]) * item["quantity"] for item in items)
        customer_id = 207_119_551 + rng.randint(1, 40)
        return Entry({
            "id": order_id,
            "admin_graphql_api_id": f"gid://shopify/Order/{order_id}",
            "name": f"#{1000 + n}",
            "order_number": 1000 + n,
            "email": f"customer{customer_id}@example.com",
            "created_at": iso_offset(created, SHOP_ZONE),
            "updated_at": iso_offset(moment, SHOP_ZONE),
            "processed_at": iso_offset(created, SHOP_ZONE),
            "currency": "EUR",
            "subtotal_price": f"{total:.2f}",
            "total_tax": f"{total * 0.2:.2f}",
            "total_price": f"{total * 1.2:.2f}",
            "financial_status": rng.choice(["paid", "pending", "refunded"]),
            "fulfillment_status": rng.choice([None, "fulfilled", "partial"]),
            "tags": rng.choice(["", "vip", "vip, wholesale"]),
            "test": False,
            "note": rng.choice([None, "Leave at the door"]),
            "customer": {"id": customer_id, "email": f"customer{customer_id}@example.com",
                         "first_name": rng.choice(["Bob", "Alice", "Zoé"]), "last_name": "Norman",
                         "created_at": iso_offset(created - timedelta(days=30), SHOP_ZONE),
                         "updated_at": iso_offset(created, SHOP_ZONE), "state": "enabled", "verified_email": True},
            "line_items": items,
            "shipping_address": rng.choice([None, {"address1": f"{n} Rue de Rivoli", "city": "Paris", "zip": "75001",
                                                   "country_code": "FR", "name": "Bob Norman"}]),
        })

    def routes(self) -> list[Route]:
        return [Route("GET", ORDERS_PATH, self._orders)]

    def unauthorized(self, request: Request, problem: str) -> Response:
        return Response(401, {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"})

    def _orders(self, request: Request, match: Any) -> Response:
        query = dict(request.query)
        try:
            limit = int(query.get("limit", 50))
        except ValueError:
            return Response(400, {"errors": {"limit": "Invalid value"}})
        if not 1 <= limit <= 250:
            return Response(400, {"errors": {"limit": "must be between 1 and 250"}})
        if "page_info" in query:
            extra = [name for name in query if name in FILTERS]
            if extra:
                return Response(400, {"errors": {"page_info": f"cannot be passed with {', '.join(extra)}"}})
            try:
                filters, offset = decode_token(query["page_info"])
            except ValueError:
                return Response(400, {"errors": {"page_info": "Invalid value."}})
        else:
            filters, offset = {k: v for k, v in query.items() if k in FILTERS}, 0
        try:
            entries = self._select(filters)
        except ValueError as error:
            return Response(400, {"errors": {"updated_at_min": str(error)}})
        page = [e.record for e in entries[offset: offset + limit]]
        links = []
        if offset > 0:
            links.append((request.url(ORDERS_PATH, limit=limit,
                                      page_info=encode_token([filters, max(0, offset - limit)])), "previous"))
        if offset + limit < len(entries):
            links.append((request.url(ORDERS_PATH, limit=limit, page_info=encode_token([filters, offset + limit])),
                          "next"))
        return Response(200, self.page_body("orders", page), {"Link": link_header(links)} if links else {})

    def _select(self, filters: dict[str, str]) -> list[Entry]:
        status = filters.get("status", "open")
        bounds = {name: parse_instant(filters[name]) for name in FILTERS if name.endswith(("_min", "_max"))
                  and name in filters}

        def keep(record: dict[str, Any]) -> bool:
            if status == "open" and record["financial_status"] == "refunded":
                return False
            for name, bound in bounds.items():
                value = parse_instant(record[name[: -len("_min")]])
                if (name.endswith("_min") and value < bound) or (name.endswith("_max") and value > bound):
                    return False
            return True

        entries = [e for e in self.tables["orders"].entries if keep(e.record)]
        field, _, direction = filters.get("order", "id asc").partition(" ")
        entries.sort(key=lambda e: (parse_instant(e.record[field]) if field.endswith("_at") else e.record[field],
                                    e.record["id"]), reverse=direction == "desc")
        return entries

    def config(self) -> dict[str, Any]:
        return {
            "client": {"base_url": self.base_url, "auth": self.project_auth()},
            "resource_defaults": {"primary_key": "id", "write_disposition": "merge"},
            "resources": [{
                "name": "orders",
                "endpoint": {
                    "path": ORDERS_PATH,
                    "params": {"status": "any", "limit": 250},
                    "data_selector": "orders",
                    "paginator": {"type": "header_link"},
                    "incremental": {"start_param": "updated_at_min", "end_param": "updated_at_max",
                                    "cursor_path": "updated_at", "value_format": "iso8601"},
                },
            }],
        }

    def plain_config(self, start: datetime, end: datetime) -> Optional[dict[str, Any]]:
        """The window as fixed `updated_at_min`/`updated_at_max`. Shopify's max is inclusive: an order
        updated exactly at `end` would come too (no stand-in record lies on a midnight)."""
        config = self.config()
        config["client"]["auth"] = self.plain_auth()
        endpoint = config["resources"][0]["endpoint"]
        endpoint["params"].update(updated_at_min=iso_z(start), updated_at_max=iso_z(end))
        del endpoint["incremental"]
        return config
