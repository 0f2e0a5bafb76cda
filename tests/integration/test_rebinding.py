"""DNS rebinding: a name that resolves to an allowed address for the check, then elsewhere.

Two real servers on loopback share a port: 127.0.0.1 stands for an address the policy allows
(``allowed_hosts: 127.0.0.1/32``), 127.0.0.2 for an internal one it refuses. The name
``rebind.test`` is resolved by a resolver the test controls (``socket.getaddrinfo``, which
asyncio's and anyio's lookups go through too): each lookup takes the next scripted answer, so a
client that resolved the name again to connect would reach 127.0.0.2. Every other lookup of a
name fails the test, and nothing is mapped to an address outside loopback.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

from conveyor.actions import ActionRegistry
from conveyor.actions.invokers import DirectHttpInvoker
from conveyor.actions.network import parse_address
from conveyor.actions.outbound import guarded_client
from conveyor.backends.local import LocalBackend
from conveyor.config import Settings
from conveyor.errors import BlockedAddressError
from conveyor.pipeline.spec import PipelineSpec
from conveyor.publishing.senders import DeliveryError, WebhookSender
from tests.support.http_server import HttpTestServer

NAME = "rebind.test"
ALLOWED = "127.0.0.1"
INTERNAL = "127.0.0.2"
SETTINGS = Settings(allowed_hosts=[f"{ALLOWED}/32"])


class Resolver:
    """Scripted answers per name: each lookup takes the next, and the last one repeats."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.lookups: dict[str, int] = dict.fromkeys(answers, 0)
        real = socket.getaddrinfo

        def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            name = host.decode() if isinstance(host, bytes) else str(host)
            if name in self.answers:
                script = self.answers[name]
                address = script[min(self.lookups[name], len(script) - 1)]
                self.lookups[name] += 1
                assert address.startswith("127."), "answers stay on loopback"
                return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, int(port or 0)))]
            if parse_address(name) is None:
                raise AssertionError(f"a test tried to resolve {host!r}")
            return real(host, port, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture
def servers() -> Iterator[tuple[HttpTestServer, HttpTestServer]]:
    """The allowed server on 127.0.0.1 and the internal one on 127.0.0.2, at the same port."""
    for _ in range(20):
        allowed = HttpTestServer(ALLOWED).start()
        internal = HttpTestServer(INTERNAL, port=allowed.port)
        try:
            internal.start()
        except OSError:  # The port is taken on 127.0.0.2: try another.
            allowed.stop()
            continue
        break
    else:  # pragma: no cover
        pytest.fail("no port free on both loopback addresses")
    allowed.route("*", "/", body={"from": "allowed"})
    internal.route("*", "/", body={"from": "internal"})
    try:
        yield allowed, internal
    finally:
        allowed.stop()
        internal.stop()


async def test_http_request_refuses_a_name_rebound_after_its_check(
    tmp_path: Path,
    servers: tuple[HttpTestServer, HttpTestServer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    allowed, internal = servers
    # The URL is checked as written and as each hop's request: both see the allowed address.
    resolver = Resolver(monkeypatch, {NAME: [ALLOWED, ALLOWED, INTERNAL]})
    spec = PipelineSpec.model_validate(
        {
            "name": "rebind",
            "steps": [
                {
                    "id": "call",
                    "action": "http_request",
                    "params": {"url": f"http://{NAME}:{allowed.port}/secret"},
                }
            ],
        }
    )
    settings = SETTINGS.model_copy(update={"db_path": tmp_path / "conveyor.db"})
    async with LocalBackend(ActionRegistry.default(), settings) as backend:
        run = await backend.wait(await backend.start_run(spec), timeout=30)

    assert run.status == "failed"
    error = run.step("call").error or ""
    assert f"refused '{NAME}:{allowed.port}' ('{NAME}' resolves to {INTERNAL})" in error
    assert "a loopback address" in error
    # Two lookups for the checks, one for the connection, none after it.
    assert resolver.lookups[NAME] == 3
    assert internal.requests == []
    assert allowed.requests == []


async def test_a_connection_goes_to_the_address_that_was_checked(
    servers: tuple[HttpTestServer, HttpTestServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    allowed, internal = servers
    resolver = Resolver(monkeypatch, {NAME: [ALLOWED, INTERNAL]})
    url = f"http://{NAME}:{allowed.port}/"

    async with guarded_client(SETTINGS) as client:
        first = await client.get(url)
        # The pooled connection is reused: it was made to the address checked.
        second = await client.get(url)
    assert first.json() == second.json() == {"from": "allowed"}
    assert resolver.lookups[NAME] == 1
    assert [r.header("host") for r in allowed.requests] == [f"{NAME}:{allowed.port}"] * 2

    # A new connection resolves again, and the new answer is checked before connecting.
    async with guarded_client(SETTINGS) as client:
        with pytest.raises(BlockedAddressError, match=f"resolves to {INTERNAL}"):
            await client.get(url)
    assert internal.requests == []


async def test_a_webhook_delivery_is_refused_when_the_name_is_rebound(
    servers: tuple[HttpTestServer, HttpTestServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    allowed, internal = servers
    # The attempt checks the URL first and sees the allowed address.
    resolver = Resolver(monkeypatch, {NAME: [ALLOWED, INTERNAL]})
    sender = WebhookSender(SETTINGS)
    try:
        with pytest.raises(DeliveryError) as caught:
            await sender.send(
                f"http://{NAME}:{allowed.port}/hook", "s" * 16, b"{}", msg_id="d1", timestamp=1
            )
    finally:
        await sender.aclose()
    assert caught.value.permanent
    assert f"resolves to {INTERNAL}" in str(caught.value)
    assert resolver.lookups[NAME] == 2
    assert internal.requests == []


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    """A throwaway certificate authority."""
    return trustme.CA()


async def test_tls_keeps_the_name_for_sni_and_verification(
    authority: trustme.CA, monkeypatch: pytest.MonkeyPatch
) -> None:
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("pinned.test").configure_cert(server_side)
    client_side = ssl.create_default_context()
    authority.configure_trust(client_side)
    Resolver(monkeypatch, {"pinned.test": [ALLOWED], "other.test": [ALLOWED]})

    with HttpTestServer(ALLOWED, tls=server_side) as server:
        server.route("GET", "/", body={"tls": True})
        async with guarded_client(SETTINGS, verify=client_side) as client:
            answer = await client.get(f"https://pinned.test:{server.port}/")
            assert answer.json() == {"tls": True}
            assert server.server_names == ["pinned.test"]
            assert server.requests[0].header("host") == f"pinned.test:{server.port}"

            # The certificate is checked against the name asked for, not the address.
            with pytest.raises(httpx.ConnectError, match="certificate"):
                await client.get(f"https://other.test:{server.port}/")
        assert len(server.requests) == 1


async def test_an_invoker_connects_to_the_address_it_resolved_for_its_configured_host(
    servers: tuple[HttpTestServer, HttpTestServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    allowed, internal = servers
    # The operator's own service name is trusted whatever it resolves to, but it is still
    # resolved once per connection, and that connection is what the request uses.
    resolver = Resolver(monkeypatch, {"billing.test": [ALLOWED, INTERNAL]})
    invoker = DirectHttpInvoker({"billing": f"http://billing.test:{allowed.port}"})
    try:
        first = await invoker.invoke("billing", "invoices", http_method="GET")
        second = await invoker.invoke("billing", "invoices", http_method="GET")
    finally:
        await invoker.aclose()
    assert first == second == {"from": "allowed"}
    assert resolver.lookups["billing.test"] == 1
    assert [r.header("host") for r in allowed.requests] == [f"billing.test:{allowed.port}"] * 2
    assert internal.requests == []
