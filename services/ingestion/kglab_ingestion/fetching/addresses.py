"""Which web addresses the fetcher may visit: http(s) to public hosts only.

Checked twice: :func:`validate_public_url` refuses a URL whose host is a literal internal address
(in any spelling: dotted, decimal, hex or octal IPv4, IPv6, IPv4 inside IPv6), and
:func:`check_resolved_address` refuses every address a host name resolves to at connect time, so
a public-looking name that resolves inward (or rebinds between two lookups) is refused too.
"""

from __future__ import annotations

import ipaddress
import re
import socket

import httpx

from kglab_shared.errors import UnprocessableError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_MAX_URL_LENGTH = 2048
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
_HOST_NAME = re.compile(r"^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_-]+\.?$")
_NUMERIC_HOST = re.compile(r"^[0-9a-fx.]+$")
_INTERNAL = "It points to a private, loopback or otherwise internal network address"


class UnsafeUrlError(UnprocessableError):
    """The URL may not be fetched (scheme, credentials, internal address, length)."""

    code = "unsafe_url"


def is_public_address(ip: IPAddress) -> bool:
    """True when ``ip`` is a globally routable unicast address."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return is_public_address(ip.ipv4_mapped)
        if ip.sixtofour is not None:
            return is_public_address(ip.sixtofour)
        if ip in _NAT64:
            return is_public_address(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if ip in _NAT64_LOCAL or ip.teredo is not None:
            return False
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


def address_allowed(
    ip: IPAddress, *, allow_private: bool = False, allowlist: tuple[IPNetwork, ...] = ()
) -> bool:
    """Public addresses always; internal ones only when allowed outright or listed."""
    if allow_private or is_public_address(ip):
        return True
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    return any(ip in net or (mapped is not None and mapped in net) for net in allowlist)


def literal_address(host: str) -> IPAddress | None:
    """The IP address ``host`` spells, in any form the C library accepts; None for a name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    # inet_aton is what a resolver applies to "2130706433", "0x7f.1", "0177.0.0.1" or "127.1".
    if _NUMERIC_HOST.match(host) and any(c.isdigit() for c in host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host.rstrip(".")))
        except OSError:
            return None
    return None


def check_resolved_address(
    host: str,
    address: str,
    *,
    allow_private: bool = False,
    allowlist: tuple[IPNetwork, ...] = (),
) -> None:
    """Refuse a connection to ``address`` (what ``host`` resolved to) unless it is allowed."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        raise UnsafeUrlError(f"The host {host} resolved to an unusable address.") from None
    if not address_allowed(ip, allow_private=allow_private, allowlist=allowlist):
        raise UnsafeUrlError(f"The host {host} cannot be fetched. {_INTERNAL}.")


def validate_public_url(
    url: str,
    *,
    max_length: int = DEFAULT_MAX_URL_LENGTH,
    allow_private: bool = False,
    allowlist: tuple[IPNetwork, ...] = (),
) -> str:
    """Return the normalised URL, or raise :class:`UnsafeUrlError` with a readable detail."""
    url = url.strip() if isinstance(url, str) else ""
    if not url:
        raise UnsafeUrlError("Give a web address that starts with http:// or https://.")
    if len(url) > max_length:
        raise UnsafeUrlError(
            f"The address is {len(url)} characters long; the limit is {max_length}."
        )
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        raise UnsafeUrlError("The address contains spaces or control characters.")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError):
        raise UnsafeUrlError("This is not a valid web address.") from None
    if parsed.scheme not in ("http", "https"):
        raise UnsafeUrlError("Only http:// and https:// addresses can be fetched.")
    if parsed.userinfo:
        raise UnsafeUrlError("Addresses with a user name or password in them cannot be fetched.")
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise UnsafeUrlError(f"The port {parsed.port} is not a valid port number.")
    host = parsed.raw_host.decode("ascii", "replace").lower()
    if not host:
        raise UnsafeUrlError("The address has no host name.")
    ip = literal_address(host)
    if ip is None:
        if not _HOST_NAME.match(host):
            raise UnsafeUrlError(f"'{host}' is not a valid host name.")
        name = host.rstrip(".")
        local = name == "localhost" or name.endswith(".localhost")
        if local and not (allow_private or allowlist):
            raise UnsafeUrlError(f"The host {name} cannot be fetched. {_INTERNAL}.")
    elif not address_allowed(ip, allow_private=allow_private, allowlist=allowlist):
        raise UnsafeUrlError(f"The address {ip} cannot be fetched. {_INTERNAL}.")
    normalised = str(parsed)
    if len(normalised) > max_length:
        raise UnsafeUrlError(
            f"The address is {len(normalised)} characters long once encoded; "
            f"the limit is {max_length}."
        )
    return normalised
