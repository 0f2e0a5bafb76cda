"""The outbound guard for HTTP requests that actions make on behalf of a pipeline's author.

A pipeline's author picks the URL of an `http_request` step, so without a guard a pipeline could
read the cloud metadata service, the engine's own API on loopback or anything on the private
network the engine runs in (server-side request forgery). `check_url` refuses those addresses
unless the operator opens them with `Settings.allow_private_networks` or lists them in
`Settings.allowed_hosts`.

What is refused, and why each rule is there:

- schemes other than http and https (``file:``, ``gopher:``: other protocols, other risks);
- loopback, private (RFC 1918, CGNAT 100.64/10, ULA fc00::/7), link-local, unspecified,
  multicast, reserved and every other address that is not globally reachable;
- cloud metadata services by address (169.254.169.254, fd00:ec2::254) and by name
  (``metadata.google.internal``, ``metadata``);
- the same addresses spelled otherwise: IPv4 inside IPv6 (``::ffff:127.0.0.1``, 6to4, NAT64,
  Teredo) and the legacy IPv4 forms that resolvers still accept (``2130706433``,
  ``0x7f000001``, ``127.1``, ``0177.0.0.1``);
- host names that resolve to any refused address: every address a name resolves to is checked,
  since a client may connect to any of them.

The stdlib `ipaddress` module does the classification. The SSRF-guard packages on PyPI were
weighed against it: none is widely used, and they either wrap `requests` or patch httpcore's
internals, while this policy has to follow Conveyor's own settings (host names and CIDR blocks).

`check_url` resolves a name to check it, and a client would resolve it again to connect: a
name whose DNS answer changes between the two (DNS rebinding) would pass. So the clients that
send what pipelines name (`conveyor.actions.outbound`) connect only through
`connect_addresses`, which resolves once, checks every address, and hands those very
addresses to the connection; `check_url` stays the early check that names the URL.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

import httpx

from conveyor.errors import BlockedAddressError, ServiceInvocationError

if TYPE_CHECKING:
    from conveyor.config import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOWED_SCHEMES = frozenset({"http", "https"})

METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack, ...
        ipaddress.ip_address("169.254.170.2"),  # AWS ECS task metadata
        ipaddress.ip_address("fd00:ec2::254"),  # AWS over IPv6
        ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
    }
)
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata", "metadata.goog"})

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# Characters of the legacy IPv4 forms (decimal, octal, hex, fewer than four parts); a host made
# only of these is never a valid DNS name that a resolver would look up.
_LEGACY_IPV4 = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)(?:\.(?:0x[0-9a-f]*|[0-9]+)){0,3}\.?$", re.I)


@dataclass(frozen=True)
class _Allowlist:
    names: frozenset[str]
    networks: tuple[IPNetwork, ...]

    @classmethod
    def parse(cls, entries: Iterable[str]) -> _Allowlist:
        names: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in entries:
            text = entry.strip().lower()
            if not text:
                continue
            try:
                networks.append(ipaddress.ip_network(text.strip("[]"), strict=False))
            except ValueError:
                names.add(text.rstrip("."))
        return cls(frozenset(names), tuple(networks))

    def allows_address(self, address: IPAddress) -> bool:
        return any(address.version == net.version and address in net for net in self.networks)


def blocked_reason(address: IPAddress) -> str | None:
    """Why `address` is refused by default, or None when it is a public address.

    Args:
        address: An IPv4 or IPv6 address.

    Returns:
        A short reason such as ``"a loopback address"``, or None.
    """
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            # The zone says which interface, not where: compare the bare address.
            address = ipaddress.IPv6Address(int(address))
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            inner = blocked_reason(embedded)
            if inner is not None:
                return f"{inner} ({embedded}) embedded in an IPv6 address"
    if address in METADATA_ADDRESSES:
        return "a cloud metadata service"
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if isinstance(address, ipaddress.IPv4Address) and address in _CGNAT:
        return "a shared (CGNAT) address"
    if address.is_reserved:
        return "a reserved address"
    if address.is_private:
        return "a private address"
    if not address.is_global:
        return "an address that is not globally reachable"
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    # Each of these makes a client talk IPv4 to the embedded address (directly, or through a
    # translator that might be on the local network).
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def parse_address(host: str) -> IPAddress | None:
    """The IP address `host` spells, in any form a resolver accepts, or None for a name.

    Besides the standard forms this reads the legacy IPv4 ones (``2130706433``,
    ``0x7f000001``, ``127.1``, ``0177.0.0.1``), because ``getaddrinfo`` connects to them too.
    """
    text = host.strip().strip("[]")
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    if "%" in text:
        # An IPv6 zone id (fe80::1%eth0, percent-encoded in URLs as %25).
        try:
            return ipaddress.ip_address(unquote(text).split("%", 1)[0])
        except ValueError:
            pass
    if _LEGACY_IPV4.match(text):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(text.rstrip(".")))
        except OSError:
            return None
    return None


async def check_url(url: str, settings: Settings | None = None, *, resolve: bool = True) -> None:
    """Refuse `url` unless the outbound policy lets actions reach it.

    Args:
        url: The URL about to be requested.
        settings: Where `allow_private_networks` and `allowed_hosts` come from; the defaults
            (everything internal refused) when None.
        resolve: Whether to resolve a host name and check every address it resolves to
            (``getaddrinfo``, run in a thread). Without it only literal addresses and names
            known to be internal are refused.

    Raises:
        BlockedAddressError: the scheme or the address is refused; the message says why.
        ServiceInvocationError: the host name cannot be resolved.
    """
    if settings is None:
        from conveyor.config import Settings

        settings = Settings()
    schemes, hosts = _hosts_of(url)
    for scheme in sorted(schemes - ALLOWED_SCHEMES):
        raise BlockedAddressError(
            f"refused {_short(url)}: scheme {scheme or '(none)'!r} is not http or https"
        )
    if settings.allow_private_networks:
        return
    allowlist = _Allowlist.parse(settings.allowed_hosts)
    for host in hosts:
        await _check_host(host, url, allowlist, resolve=resolve)


async def _check_host(host: str, url: str, allowlist: _Allowlist, *, resolve: bool) -> None:
    name = unquote(host).strip("[]").lower().rstrip(".")
    if not name:
        raise BlockedAddressError(f"refused {_short(url)}: it has no host")
    if name in allowlist.names:
        return
    literal = parse_address(name)
    if literal is not None:
        via = "" if str(literal) == name else f" ({name!r} is {literal})"
        _check_address(literal, via, url, allowlist)
        return
    if name in METADATA_HOSTS:
        raise BlockedAddressError(
            f"refused {_short(url)}: {name!r} is a cloud metadata service{_HINT}"
        )
    if not resolve:
        if name == "localhost" or name.endswith(".localhost"):
            # RFC 6761: these always resolve to loopback, whatever DNS says.
            raise BlockedAddressError(
                f"refused {_short(url)}: {name!r} is a loopback host name{_HINT}"
            )
        return
    for address in await _resolve(name, url):
        _check_address(address, f" ({name!r} resolves to {address})", url, allowlist)


_HINT = "; allow it with CONVEYOR_ALLOWED_HOSTS or CONVEYOR_ALLOW_PRIVATE_NETWORKS"


def _check_address(address: IPAddress, via: str, url: str, allowlist: _Allowlist) -> None:
    if allowlist.allows_address(address):
        return
    reason = blocked_reason(address)
    if reason is not None:
        raise BlockedAddressError(f"refused {_short(url)}{via}: {reason}{_HINT}")


async def connect_addresses(
    host: str, port: int, settings: Settings, *, allowed: Iterable[str] = ()
) -> list[IPAddress]:
    """The addresses a connection to `host` may be made to: resolved once, each one checked.

    Args:
        host: The host a connection is about to be made to (a name or a literal address).
        port: Its port (for messages).
        settings: The outbound policy (`allow_private_networks`, `allowed_hosts`).
        allowed: More host names or CIDR blocks to allow (a client's configured services).

    Raises:
        BlockedAddressError: the host, or an address it resolves to, is refused.
        ServiceInvocationError: the name cannot be resolved.
    """
    where = f"{host}:{port}"
    name = host.strip("[]").lower().rstrip(".")
    literal = parse_address(name)
    allowlist = _Allowlist.parse([*settings.allowed_hosts, *allowed])
    trusted = settings.allow_private_networks or name in allowlist.names
    if literal is not None:
        if not trusted:
            _check_address(literal, "", where, allowlist)
        return [literal]
    if name in METADATA_HOSTS and not trusted:
        raise BlockedAddressError(
            f"refused {_short(where)}: {name!r} is a cloud metadata service{_HINT}"
        )
    addresses = await _resolve(name, where)
    if not trusted:
        for address in addresses:
            _check_address(address, f" ({name!r} resolves to {address})", where, allowlist)
    return list(dict.fromkeys(addresses))


async def _resolve(name: str, url: str) -> list[IPAddress]:
    try:
        infos = await asyncio.to_thread(socket.getaddrinfo, name, None, 0, socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ServiceInvocationError(f"cannot resolve {name!r} for {_short(url)}: {exc}") from exc
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        address = parse_address(str(sockaddr[0]))
        if address is None:  # pragma: no cover - getaddrinfo returns numeric addresses
            raise BlockedAddressError(f"refused {_short(url)}: {name!r} resolved to {sockaddr[0]}")
        addresses.append(address)
    if not addresses:
        raise ServiceInvocationError(f"cannot resolve {name!r} for {_short(url)}: no address")
    return list(dict.fromkeys(addresses))


def _hosts_of(url: str) -> tuple[set[str], list[str]]:
    """The schemes and hosts of `url`, as each URL parser involved sees them.

    The standard library's parser and httpx's can disagree on odd URLs; checking what each of
    them sees closes the gap such a parser differential would open.
    """
    text = url.strip()
    try:
        split = urlsplit(text)
    except ValueError as exc:
        raise BlockedAddressError(f"refused {_short(url)}: not a valid URL ({exc})") from exc
    schemes = {split.scheme.lower()}
    hosts = [split.hostname or ""]
    try:
        parsed = httpx.URL(text)
    except httpx.InvalidURL as exc:
        # httpx rejects some spellings of blocked addresses (0177.0.0.1): name the address
        # rather than the syntax, so the refusal says what it is about.
        if parse_address(hosts[0]) is not None:
            return schemes, hosts
        raise BlockedAddressError(f"refused {_short(url)}: not a valid URL ({exc})") from exc
    schemes.add(parsed.scheme.lower())
    if parsed.host.lower() != hosts[0].lower():
        hosts.append(parsed.host)
    return schemes, hosts


def _short(url: str, limit: int = 200) -> str:
    text = url if len(url) <= limit else url[:limit] + "..."
    return repr(text)


__all__ = [
    "ALLOWED_SCHEMES",
    "METADATA_ADDRESSES",
    "METADATA_HOSTS",
    "blocked_reason",
    "check_url",
    "connect_addresses",
    "parse_address",
]
