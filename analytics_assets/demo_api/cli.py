"""Run the demo API by hand, so the pipeline can be pointed at it from a shell."""

from __future__ import annotations

import argparse
import signal
import threading
from datetime import date

from .server import CONFIG_CHOICES, DemoApi, DemoApiConfig

# Shape switches exposed as flags, each named after its DemoApiConfig field.
_CHOICE_FIELDS = (
    "token_auth_method",
    "window_format",
    "timestamp_format",
    "empty_page",
    "pagination",
    "rate_limit_headers",
    "rate_limit_reset",
)
_SWITCH_FIELDS = ("ignore_window", "window_end_inclusive", "numbers_as_strings")
_SHAPE_FIELDS = (*_CHOICE_FIELDS, *_SWITCH_FIELDS, "window_params", "rate_limit", "rate_limit_window")


def _flag(field: str) -> str:
    return "--" + field.replace("_", "-")


def _retry_after(value: str) -> int | str:
    # Seconds are the common case; anything else (an HTTP-date) is sent as is.
    return int(value) if value.isdigit() else value


def _parser() -> argparse.ArgumentParser:
    defaults = DemoApiConfig()
    parser = argparse.ArgumentParser(prog="demo-api", description="Serve the bundled demo analytics API on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port (default: %(default)s)")
    parser.add_argument("--records", type=int, default=defaults.records)
    parser.add_argument("--days", type=int, default=defaults.days)
    parser.add_argument(
        "--end-date", type=date.fromisoformat, default=None, help="exclusive end of the data (default: today UTC)"
    )
    parser.add_argument("--client-id", default=defaults.client_id)
    parser.add_argument("--client-secret", default=defaults.client_secret)
    parser.add_argument("--token-lifetime", type=int, default=defaults.token_lifetime, help="seconds")
    parser.add_argument("--latency-ms", type=float, default=defaults.latency_ms)
    parser.add_argument("--page-cap", type=int, default=None, help="largest page served whatever limit asks for")
    parser.add_argument("--fail-status", type=int, action="append", help="status for random failures (repeatable)")
    parser.add_argument("--fail-rate", type=float, default=0.0, help="probability that a page request fails")
    parser.add_argument("--retry-after", type=_retry_after, default=None, help="Retry-After sent with failures")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seeds both the data and the failures")
    shape = parser.add_argument_group("API shape", "mimic a particular real API (defaults: the demo API's own shape)")
    for field in _CHOICE_FIELDS:
        choices = [choice for choice in CONFIG_CHOICES[field] if choice is not None]
        shape.add_argument(_flag(field), choices=choices, default=getattr(defaults, field))
    for field in _SWITCH_FIELDS:
        shape.add_argument(_flag(field), action="store_true")
    shape.add_argument("--window-params", nargs=2, metavar=("SINCE", "UNTIL"), default=defaults.window_params)
    shape.add_argument("--rate-limit", type=float, default=None, help="requests per second on the resource path")
    shape.add_argument("--rate-limit-window", type=float, default=defaults.rate_limit_window, help="seconds")
    return parser


def _config(args: argparse.Namespace) -> DemoApiConfig:
    shape = {field: getattr(args, field) for field in _SHAPE_FIELDS}
    return DemoApiConfig(
        records=args.records,
        days=args.days,
        end_date=args.end_date,
        seed=args.seed,
        client_id=args.client_id,
        client_secret=args.client_secret,
        token_lifetime=args.token_lifetime,
        latency_ms=args.latency_ms,
        page_cap=args.page_cap,
        port=args.port,
        **{**shape, "window_params": tuple(args.window_params)},
    )


def main(argv: list[str] | None = None) -> int:
    """Serve until Ctrl-C; the printed credentials are demo values, not secrets."""
    parser = _parser()
    args = parser.parse_args(argv)
    config = _config(args)
    try:
        api = DemoApi(config)
    except ValueError as exc:  # switches that contradict each other
        parser.error(str(exc))
    if args.fail_rate:
        api.faults.set_rate(
            args.fail_rate, statuses=tuple(args.fail_status or (429, 503)), retry_after=args.retry_after, seed=args.seed
        )
    with api:
        window = f"{config.days} days before {api.config.end_date}"
        print(f"Demo analytics API: {config.records} records updated in the {window}")
        print(f"  base URL:      {api.base_url}")
        print(f"  resource URL:  {api.resource_url}")
        print(f"  token URL:     {api.token_url}")
        print(f"  client_id:     {config.client_id}")
        print(f"  client_secret: {config.client_secret}")
        print("Press Ctrl-C to stop.", flush=True)
        _wait_for_stop_signal()
    return 0


def _wait_for_stop_signal() -> None:
    """Block until SIGINT or SIGTERM.

    Handlers are installed explicitly because a process started in the
    background by a shell inherits SIGINT as ignored, and SIGTERM should shut
    down as cleanly as Ctrl-C does.
    """
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():  # signals only reach the main thread
        stop.wait()
        return
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.wait(0.5):  # a timed wait lets the handlers run promptly
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    raise SystemExit(main())
