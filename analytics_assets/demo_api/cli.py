"""Run the demo API by hand, so the pipeline (or a user's own API config) can be pointed at it from a shell.

Every DemoApiConfig field has a flag named after it, with its help in
``_FIELD_HELP``; flags are built from the dataclass's types, so a new field
needs only a line of help. Field flags have no argparse default: what a user
did not give comes from ``--profile``, else from DemoApiConfig itself, which
is how explicit flags win over a profile and the epilog can state defaults
once.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import shlex
import signal
import threading
import typing
from collections.abc import Callable
from datetime import date
from typing import Any

from .server import CONFIG_CHOICES, PROFILES, DemoApi, DemoApiConfig

DEFAULT_PORT = 8765
# One line of help per DemoApiConfig field, by group; each field becomes the flag --field-name
# except where _FLAG_NAMES says otherwise. Defaults are appended from DemoApiConfig().
_FIELD_HELP: dict[str, dict[str, str]] = {
    "data and server": {
        "port": "port on 127.0.0.1; 0 picks a free one",
        "records": "records the API holds",
        "days": "days their updated_at spreads over",
        "end_date": "exclusive end of the data, YYYY-MM-DD (default: today UTC)",
        "seed": "seeds both the data and the random failures",
        "latency_ms": "milliseconds added to every resource answer",
    },
    "token endpoint (POST /oauth/token, grant_type=client_credentials)": {
        "client_id": "the one client id accepted",
        "client_secret": "its secret",
        "token_lifetime": "seconds a token stays valid",
        "token_auth_method": "how the client authenticates: any, HTTP Basic only, or form body only",
        "required_scope": "space-separated scopes the token request's scope must include",
        "required_token_fields": "a form field the token request must carry, e.g. audience=https://x (repeatable)",
        "expires_in_format": "expires_in as a JSON number, as a string, or left out",
        "token_type": "the token_type of the token answer",
    },
    "resources and windows": {
        "resource_paths": "a path that serves the records (repeatable)",
        "window_params": "names of the query parameters of the window's start (inclusive) and end",
        "window_format": "how the window parameters are written",
        "ignore_window": "ignore the window and serve everything, like an API that misnames it",
        "ignore_window_start": "serve everything before the window's end, like an API that misreads its start",
        "window_end_inclusive": "the window's end is inclusive",
        "timestamp_format": "how records' created_at and updated_at are served",
        "numbers_as_strings": "serve metric_value and event_count as JSON strings",
    },
    "pages": {
        "pagination": "paging style: offset/limit, a cursor, a next link in the body or in a Link header, page numbers",
        "page_cap": "largest page served whatever the limit asks for",
        "include_total": "leave `total` out of pages",
        "has_more": "add has_more to offset pages",
        "empty_page": "a page without records: JSON, a 204, or an empty 200",
        "compress": "gzip answers for clients whose Accept-Encoding allows it",
        "total_bias": "report a total this many records above those served (a broken API)",
        "page_cap_skips": "page_number paging with --page-cap starts pages where uncapped ones would (a broken API)",
    },
    "rate limits (resource paths only)": {
        "rate_limit": "requests per second admitted; more get a 429 with Retry-After",
        "rate_limit_window": "seconds per window; the quota per window is rate * window, at least 1",
        "rate_limit_headers": "also announce the limit in X-RateLimit-* (x) or RateLimit-* (ietf) headers",
        "rate_limit_reset": "X-RateLimit-Reset as delta seconds or as a Unix epoch",
    },
}
_FLAG_NAMES = {"include_total": "--no-total", "resource_paths": "--resource-path"}
_FLAG_NAMES["required_token_fields"] = "--required-token-field"
_NONE_DEFAULT_TEXT = {"port": str(DEFAULT_PORT), "page_cap": "no cap", "rate_limit": "no limit"}


def _flag(field: str) -> str:
    return _FLAG_NAMES.get(field) or "--" + field.replace("_", "-")


def _retry_after(value: str) -> int | str:
    # Seconds are the common case; anything else (an HTTP-date) is sent as is.
    return int(value) if value.isdigit() else value


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


# argparse options for fields whose type alone does not say how they are written.
_SPECIAL: dict[str, dict[str, Any]] = {
    "end_date": {"type": date.fromisoformat, "metavar": "DATE"},
    "window_params": {"nargs": 2, "metavar": ("SINCE", "UNTIL")},
    "resource_paths": {"action": "append", "metavar": "PATH"},
    "required_token_fields": {"action": "append", "type": _key_value, "metavar": "KEY=VALUE"},
    "include_total": {"action": "store_false"},
}
# How parsed values become field values.
_CONVERT: dict[str, Callable[[Any], Any]] = {
    "window_params": tuple,
    "resource_paths": tuple,
    "required_token_fields": dict,
}


def _argument(field: dataclasses.Field[Any], hint: Any, help_text: str) -> tuple[str, dict[str, Any]]:
    """The flag and argparse options of a DemoApiConfig field, from its type unless _SPECIAL says more."""
    options: dict[str, Any] = {"dest": field.name, "help": help_text}
    default = field.default
    if field.name in _SPECIAL:
        options.update(_SPECIAL[field.name])
    elif hint is bool:
        options["action"] = "store_true"
    elif field.name in CONFIG_CHOICES:
        options["choices"] = [choice for choice in CONFIG_CHOICES[field.name] if choice is not None]
    else:
        base = next((t for t in typing.get_args(hint) if t is not type(None)), hint)  # X | None -> X
        options.update(type=base, metavar=field.name.split("_")[-1].upper() if base is not str else None)
    shown = _NONE_DEFAULT_TEXT.get(field.name, default)
    if not isinstance(default, bool) and shown is not None and "(default" not in help_text:
        shown = " ".join(shown) if isinstance(shown, tuple) else shown
        options["help"] = f"{help_text} (default: {shown})"
    return _flag(field.name), options


def _as_flags(field: str, value: Any) -> list[str]:
    """The flags that give ``field`` the value ``value``: how profiles are shown, and testable as such."""
    flag = _flag(field)
    if isinstance(value, bool):
        return [flag] if value != (field == "include_total") else []
    if field == "window_params":
        return [flag, *value]
    if field == "resource_paths":
        return [part for path in value for part in (flag, path)]
    if field == "required_token_fields":
        return [part for key, item in value.items() for part in (flag, f"{key}={item}")]
    return [flag, str(value)]


def _profiles_epilog() -> str:
    lines = ["profiles (--profile NAME applies these flags; flags given explicitly win):"]
    for name, values in PROFILES.items():
        flags = [shlex.join(_as_flags(field, value)) for field, value in values.items()]
        lines.append(f"  {name}:")
        lines += [f"    {flag}" for flag in flags]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="demo-api",
        description="Serve the bundled demo analytics API on 127.0.0.1 (defaults: the demo API's own shape).",
        epilog=_profiles_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        argument_default=argparse.SUPPRESS,
    )
    parser.add_argument(
        "--profile", choices=list(PROFILES), default=None, help="apply a named set of flags, listed below"
    )
    hints = typing.get_type_hints(DemoApiConfig)
    fields = {field.name: field for field in dataclasses.fields(DemoApiConfig)}
    for title, helps in _FIELD_HELP.items():
        group = parser.add_argument_group(title)
        for name, help_text in helps.items():
            flag, options = _argument(fields[name], hints[name], help_text)
            group.add_argument(flag, **options)
    failures = parser.add_argument_group("random failures of resource requests")
    failures.add_argument("--fail-rate", type=float, default=0.0, help="probability that a page request fails")
    failures.add_argument("--fail-status", type=int, action="append", default=None,
                          help="status of those failures (repeatable; default: 429 and 503)")
    failures.add_argument("--retry-after", type=_retry_after, default=None,
                          help="Retry-After sent with them: seconds or an HTTP-date")
    return parser


def _config(args: argparse.Namespace) -> DemoApiConfig:
    """DemoApiConfig's defaults, under the profile's values, under the flags given."""
    given = {
        field.name: _CONVERT.get(field.name, _same)(getattr(args, field.name))
        for field in dataclasses.fields(DemoApiConfig)
        if hasattr(args, field.name)
    }
    profile = copy.deepcopy(PROFILES.get(getattr(args, "profile", None) or "", {}))
    return DemoApiConfig(**{"port": DEFAULT_PORT, **profile, **given})


def _same(value: Any) -> Any:
    return value


def shape_lines(config: DemoApiConfig) -> list[tuple[str, str]]:
    """(field, value) for each switch that differs from the demo API's own shape, as printed at start."""
    defaults = DemoApiConfig()
    printed = {"records", "days", "end_date", "seed", "client_id", "client_secret", "port", "resource_paths"}
    lines = []
    for field in dataclasses.fields(DemoApiConfig):
        value = getattr(config, field.name)
        if field.name in printed or value == getattr(defaults, field.name):
            continue
        if isinstance(value, dict):
            value = " ".join(f"{key}={item}" for key, item in value.items())
        elif isinstance(value, tuple):
            value = " ".join(value)
        lines.append((field.name, str(value)))
    return lines


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
        statuses = tuple(args.fail_status or (429, 503))
        api.faults.set_rate(args.fail_rate, statuses=statuses, retry_after=args.retry_after, seed=config.seed)
    with api:
        window = f"{config.days} days before {api.config.end_date}"
        print(f"Demo analytics API: {config.records} records updated in the {window}")
        print(f"  base URL:       {api.base_url}")
        print(f"  resource URL:   {api.resource_url}")
        print(f"  resource paths: {' '.join(config.resource_paths)}")
        print(f"  token URL:      {api.token_url}")
        print(f"  client_id:      {config.client_id}")
        print(f"  client_secret:  {config.client_secret}")
        print(f"  profile:        {args.profile or 'none'}")
        shape = shape_lines(config)
        print(f"  shape:          {'differs from the default in' if shape else 'the default'}")
        width = max((len(name) for name, _ in shape), default=0)
        for name, value in shape:
            print(f"    {name + ':':<{width + 1}} {value}")
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
