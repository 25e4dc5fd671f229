"""Run the demo API by hand, so the pipeline can be pointed at it from a shell."""

from __future__ import annotations

import argparse
import signal
import threading
from datetime import date

from .server import DemoApi, DemoApiConfig


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
    return parser


def main(argv: list[str] | None = None) -> int:
    """Serve until Ctrl-C; the printed credentials are demo values, not secrets."""
    args = _parser().parse_args(argv)
    config = DemoApiConfig(
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
    )
    api = DemoApi(config)
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
