"""Where requests, and above all credentials, may go: URLs read with the parser that connects.

requests hands URLs to urllib3, so they are checked with urllib3's own `parse_url`. A second
parser (`urllib.parse`) can read the same text as another host (`http://evil\\@127.0.0.1/` is
`127.0.0.1` to one and `evil` to the other); anything either could read two ways is refused
outright: backslashes, whitespace and control characters, and credentials in the URL.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from ..errors import SettingsError

DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Origin:
    """Scheme, host and port: what a redirect must keep and what the token-host rule compares."""

    scheme: str
    host: str
    port: int


def check_url(url: object, setting: str, query: bool = False) -> str:
    """`url` as urllib3 normalises it, or SettingsError naming `setting`. A URL holding credentials
    is refused without being quoted. A `query` is allowed where nothing is appended to the URL (a
    token URL: some identity providers name a policy there)."""
    example = "an http(s) URL such as https://api.example.com"
    if not isinstance(url, str) or not url:
        raise SettingsError(f"{setting} must be {example}; got {url!r}.")
    if any(char == "\\" or char.isspace() or ord(char) < 32 or ord(char) == 127 for char in url):
        raise SettingsError(f"{setting} must be {example}, without backslashes, spaces or control characters; "
                            f"got {_quoted(url)}.")
    try:
        parsed = parse_url(url)
    except LocationParseError:
        raise SettingsError(f"{setting} must be {example}; got {_quoted(url)}.") from None
    if parsed.scheme not in DEFAULT_PORTS or not parsed.host:
        raise SettingsError(f"{setting} must be {example}; got {_quoted(url)}.")
    if parsed.scheme == "http" and not is_loopback(parsed.host):
        raise SettingsError(
            f"{setting}={_quoted(url)} uses plain http to a non-loopback host: client credentials and tokens "
            "would travel in clear text. Use https (plain http is allowed only for 127.0.0.1/localhost, "
            "e.g. the bundled demo API)."
        )
    if parsed.auth is not None or "@" in _authority(url)[1]:
        raise SettingsError(
            f"{setting} holds credentials (user:password@) in the URL; they would be logged and stored. "
            "Remove them: the client id and secret go in ANALYTICS_CLIENT_ID / ANALYTICS_CLIENT_SECRET."
        )
    if parsed.fragment is not None or (parsed.query is not None and not query):
        parts = "a fragment (#)" if query else "a query (?) or fragment (#)"
        raise SettingsError(f"{setting} must be {example}, without {parts}; got {_quoted(url)}.")
    return parsed.url


def origin_of(url: str) -> Origin:
    parsed = parse_url(url)
    scheme = (parsed.scheme or "").lower()
    return Origin(scheme, _host(parsed.host or ""), parsed.port or DEFAULT_PORTS.get(scheme, 0))


def host_of(url: str) -> str:
    return origin_of(url).host


def is_loopback(host: str) -> bool:
    host = _host(host)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _host(host: str) -> str:
    """Hosts compare case-insensitively and without the DNS root's trailing dot."""
    return host.lower().rstrip(".")


def _authority(url: str) -> tuple[str, str, str]:
    """(`scheme://`, the authority, the rest): the authority ends at the first `/`, `?` or `#`."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "", "", url
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    return scheme + sep, authority, rest[len(authority):]


def _quoted(url: str) -> str:
    """The URL for a message, with anything before an `@` in its authority masked."""
    prefix, authority, rest = _authority(url)
    if "@" in authority:
        authority = "***@" + authority.rsplit("@", 1)[1]
    return repr(prefix + authority + rest)
