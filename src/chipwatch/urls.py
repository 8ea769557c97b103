"""The one check of a URL before chipwatch stores or fetches it.

Used at the door (config sources, `feeds add`, OPML import) and before each request
(feed, advertised alternate, redirect target, full-text entry link), so a URL the HTTP
client cannot parse is a clear per-feed `invalid_url` error instead of an exception.

The rules, beyond what httpx.URL parses: http or https only; a host made of DNS labels or
an IP literal (no percent signs, no empty labels); a numeric host only as a canonical
dotted quad (`0177.0.0.1`, `2130706433` or `0x7f.1` are other spellings of an address,
read differently by different libraries, so none of them is guessed at); a port 1-65535;
no user name or password (a feed URL with `user@` is how `trusted.example@evil` tricks
are spelled); no whitespace or control characters; at most 2048 characters (the column).
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from chipwatch.errors import InvalidURLError, UnsafeURLError

MAX_URL_CHARS = 2048
_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")  # "_" is seen in real host names
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")
_CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f-\x9f]")


def check_url(url: str) -> str:
    """The URL if chipwatch may fetch it; InvalidURLError or UnsafeURLError otherwise."""
    if not isinstance(url, str) or not url:
        raise InvalidURLError(str(url), "empty URL")
    if len(url) > MAX_URL_CHARS:
        raise InvalidURLError(url[:80] + "...", f"URL longer than {MAX_URL_CHARS} characters")
    if _CONTROL_OR_SPACE.search(url):
        raise InvalidURLError(url, "whitespace or control character in URL")
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme not in ("http", "https"):
        raise UnsafeURLError(url, f"scheme {scheme!r} refused (http and https only)")
    _check_authority(url)
    _check_with_httpx(url)
    return url


def _check_authority(url: str) -> None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # a bad port or an unclosed IPv6 bracket
        raise InvalidURLError(url, f"malformed URL: {exc}") from None
    if "@" in parts.netloc:
        # The message is printed and logged: the password must not be.
        hidden = url.replace(parts.netloc, "***@" + parts.netloc.rpartition("@")[2], 1)
        raise InvalidURLError(hidden, "user name or password in URL refused")
    if not parts.hostname:
        raise InvalidURLError(url, "no host in URL")
    if port is not None and not 0 < port < 65536:
        raise InvalidURLError(url, f"port {port} out of range (1-65535)")
    if parts.netloc.endswith(":"):
        raise InvalidURLError(url, "empty port in URL")
    _check_host(url, parts.hostname)


def _check_host(url: str, host: str) -> None:
    if host.startswith("[") or ":" in host:  # urlsplit keeps IPv6 literals unbracketed
        try:
            ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            raise InvalidURLError(url, f"invalid IPv6 address {host!r}") from None
        return
    try:
        ascii_host = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise InvalidURLError(url, f"invalid international host name {host!r}") from None
    labels = ascii_host.removesuffix(".").split(".")
    if len(ascii_host) > 253 or not all(_LABEL.match(label) for label in labels):
        raise InvalidURLError(url, f"invalid host name {host!r}")
    if _NUMERIC_LABEL.match(labels[-1]):
        try:
            ipaddress.IPv4Address(ascii_host.removesuffix("."))
        except ValueError:
            raise InvalidURLError(
                url, f"ambiguous numeric host {host!r} (only dotted-quad IPv4 is read)"
            ) from None


def _check_with_httpx(url: str) -> None:
    import httpx  # here, not at module level: settings import this module, workers do not

    try:
        parsed = httpx.URL(url)
        parsed.host  # noqa: B018 - decodes punycode labels, which may be invalid
    except (httpx.InvalidURL, ValueError) as exc:  # idna raises ValueError subclasses
        raise InvalidURLError(url, f"malformed URL: {exc}") from None
