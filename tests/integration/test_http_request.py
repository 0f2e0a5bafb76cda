"""The ``http_request`` action and the outbound guard, against a real server on 127.0.0.1.

Internal addresses must be refused before any connection is attempted. As a safety net, every
test here runs with connections and name lookups limited to loopback: a guard that let one
through would fail the test instead of sending traffic anywhere.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest

from conveyor.actions import ActionContext, ActionResult, validated_params
from conveyor.actions.builtin import http_request
from conveyor.actions.builtin.http_request import HttpRequestAction, HttpRequestExecutor
from conveyor.actions.network import blocked_reason, check_url, parse_address
from conveyor.config import Settings
from conveyor.errors import BlockedAddressError
from tests.support.http_server import HttpTestServer, RecordedRequest, Reply, closed_port_url

LOOPBACK_ONLY = Settings(allowed_hosts=["127.0.0.1"])


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def loopback(address: Any) -> None:
        host = address[0] if isinstance(address, tuple) else address
        if host not in ("127.0.0.1", "::1", "::ffff:127.0.0.1"):
            raise AssertionError(f"a test tried to connect to {address!r}")

    def connect(self: socket.socket, address: Any) -> None:
        loopback(address)
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        loopback(address)
        return real_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name != "localhost" and parse_address(str(name)) is None:
            raise AssertionError(f"a test tried to resolve {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


async def run(settings: Settings | None, **params: Any) -> ActionResult:
    context = ActionContext(
        step_id="call",
        execution_id="run-1",
        params=validated_params(HttpRequestAction.meta, params),
        settings=settings,
    )
    return await HttpRequestExecutor().execute(context)


# Success paths.


async def test_get_returns_status_headers_and_decoded_json(http_server: HttpTestServer) -> None:
    http_server.route("GET", "/items", body={"items": [1, 2]}, headers={"X-Total": "2"})

    outcome = await run(
        LOOPBACK_ONLY,
        url=http_server.url_for("/items"),
        headers={"Authorization": "Bearer t"},
        query={"page": 2, "tag": ["a", "b"]},
    )

    assert outcome.success, outcome.error
    assert outcome.outputs["status_code"] == 200
    assert outcome.outputs["ok"] is True
    assert outcome.outputs["body"] == {"items": [1, 2]}
    assert outcome.outputs["headers"]["x-total"] == "2"
    assert outcome.outputs["url"].startswith(http_server.url_for("/items"))
    (request,) = http_server.requests
    assert request.header("authorization") == "Bearer t"
    assert request.query == {"page": ["2"], "tag": ["a", "b"]}


async def test_post_sends_the_json_body_and_reads_text(http_server: HttpTestServer) -> None:
    http_server.route("POST", "/echo", lambda r: Reply(201, f"got {r.json['n']}"))

    outcome = await run(
        LOOPBACK_ONLY, url=http_server.url_for("/echo"), method="POST", body={"n": 5}
    )

    assert outcome.success
    assert outcome.outputs["status_code"] == 201
    assert outcome.outputs["body"] == "got 5"
    assert http_server.requests[0].header("content-type") == "application/json"


async def test_empty_body_is_null(http_server: HttpTestServer) -> None:
    http_server.route("DELETE", "/items/1", status=204)

    outcome = await run(LOOPBACK_ONLY, url=http_server.url_for("/items/1"), method="DELETE")

    assert outcome.success
    assert outcome.outputs["body"] is None


async def test_redirects_are_followed_and_checked(http_server: HttpTestServer) -> None:
    http_server.route("GET", "/old", status=302, headers={"Location": "/new"})
    http_server.route("GET", "/new", body={"moved": True})

    outcome = await run(LOOPBACK_ONLY, url=http_server.url_for("/old"))

    assert outcome.success
    assert outcome.outputs["body"] == {"moved": True}
    assert outcome.outputs["url"] == http_server.url_for("/new")
    assert [r.path for r in http_server.requests] == ["/old", "/new"]


async def test_303_after_post_continues_with_get(http_server: HttpTestServer) -> None:
    http_server.route("POST", "/jobs", status=303, headers={"Location": "/jobs/1"})
    http_server.route("GET", "/jobs/1", body={"id": 1})

    outcome = await run(
        LOOPBACK_ONLY, url=http_server.url_for("/jobs"), method="POST", body={"x": 1}
    )

    assert outcome.outputs["body"] == {"id": 1}
    assert [(r.method, r.path) for r in http_server.requests] == [
        ("POST", "/jobs"),
        ("GET", "/jobs/1"),
    ]


async def test_redirects_can_be_left_unfollowed(http_server: HttpTestServer) -> None:
    http_server.route("GET", "/old", status=301, headers={"Location": "/new"})

    outcome = await run(
        LOOPBACK_ONLY,
        url=http_server.url_for("/old"),
        follow_redirects=False,
        expected_status=[301],
    )

    assert outcome.success
    assert outcome.outputs["status_code"] == 301
    assert outcome.outputs["headers"]["location"] == "/new"
    assert len(http_server.requests) == 1


# Error statuses.


async def test_error_status_fails_with_the_body(http_server: HttpTestServer) -> None:
    http_server.route("GET", "/missing", status=404, body={"detail": "no such item"})

    outcome = await run(LOOPBACK_ONLY, url=http_server.url_for("/missing"))

    assert not outcome.success
    assert "404 Not Found" in (outcome.error or "")
    assert "no such item" in (outcome.error or "")
    assert outcome.outputs["status_code"] == 404
    assert outcome.outputs["ok"] is False
    assert outcome.outputs["body"] == {"detail": "no such item"}


async def test_error_status_can_be_an_output_instead_of_a_failure(
    http_server: HttpTestServer,
) -> None:
    http_server.route("GET", "/missing", status=500, body="boom")

    outcome = await run(
        LOOPBACK_ONLY, url=http_server.url_for("/missing"), fail_on_error_status=False
    )

    assert outcome.success
    assert outcome.outputs["ok"] is False
    assert outcome.outputs["body"] == "boom"


async def test_expected_status_decides_what_is_ok(http_server: HttpTestServer) -> None:
    http_server.route("GET", "/gone", status=410)
    http_server.route("GET", "/fine", status=200)

    gone = await run(LOOPBACK_ONLY, url=http_server.url_for("/gone"), expected_status=[404, 410])
    fine = await run(LOOPBACK_ONLY, url=http_server.url_for("/fine"), expected_status="[201]")

    assert gone.success
    assert gone.outputs["ok"] is True
    assert not fine.success
    assert "expected 201" in (fine.error or "")


# Transport failures.


async def test_timeout_fails_saying_how_long(http_server: HttpTestServer) -> None:
    http_server.route("GET", "/slow", body={}, delay=3)

    outcome = await run(LOOPBACK_ONLY, url=http_server.url_for("/slow"), timeout_seconds=0.3)

    assert not outcome.success
    assert "timed out after 0.3 s" in (outcome.error or "")
    assert outcome.outputs["status_code"] is None


async def test_connection_refused_fails_naming_the_url() -> None:
    url = closed_port_url() + "/x"

    outcome = await run(LOOPBACK_ONLY, url=url, timeout_seconds=5)

    assert not outcome.success
    assert "could not connect" in (outcome.error or "")
    assert url in (outcome.error or "")


async def test_too_many_redirects_fail(http_server: HttpTestServer) -> None:
    http_server.route("GET", "/loop", status=302, headers={"Location": "/loop"})

    outcome = await run(LOOPBACK_ONLY, url=http_server.url_for("/loop"))

    assert not outcome.success
    assert f"more than {http_request.MAX_REDIRECTS} times" in (outcome.error or "")
    assert len(http_server.requests) == http_request.MAX_REDIRECTS + 1


async def test_oversized_response_fails(
    http_server: HttpTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http_request, "MAX_RESPONSE_BYTES", 1024)
    http_server.route("GET", "/big", body="x" * 5000)

    outcome = await run(LOOPBACK_ONLY, url=http_server.url_for("/big"))

    assert not outcome.success
    assert "larger than" in (outcome.error or "")


# Refusals: nothing may leave before the check.


INTERNAL_URLS = [
    "http://127.0.0.1:{port}/",
    "http://localhost:{port}/",
    "http://LOCALHOST.:{port}/",
    "http://[::1]:{port}/",
    "http://[::ffff:127.0.0.1]:{port}/",
    "http://2130706433:{port}/",
    "http://0x7f000001:{port}/",
    "http://127.1:{port}/",
    "http://0177.0.0.1:{port}/",
    "http://0:{port}/",
    "http://0.0.0.0:{port}/",
    "http://[::]:{port}/",
    "http://10.0.0.1/",
    "http://172.16.5.4/",
    "http://192.168.0.1/",
    "http://100.64.0.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://169.254.1.1/",
    "http://[fd00:ec2::254]/",
    "http://[fc00::1]/",
    "http://[fe80::1]/",
    "http://224.0.0.1/",
    "http://240.0.0.1/",
    "http://255.255.255.255/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://metadata/",
    "http://[64:ff9b::a00:1]/",
    "http://[2002:a00:1::]/",
    "http://user:pw@10.0.0.1/",
]


@pytest.mark.parametrize("template", INTERNAL_URLS)
async def test_internal_addresses_are_refused_before_connecting(
    http_server: HttpTestServer, template: str
) -> None:
    url = template.format(port=http_server.port)

    outcome = await run(Settings(), url=url)

    assert not outcome.success
    assert (outcome.error or "").startswith("refused"), outcome.error
    assert http_server.requests == []


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "gopher://127.0.0.1/", "ftp://example.invalid/", "http:///path"]
)
async def test_other_schemes_and_hostless_urls_are_refused(url: str) -> None:
    context = ActionContext(step_id="s", execution_id="r", params={"url": url})

    outcome = await HttpRequestExecutor().execute(context)

    assert not outcome.success
    assert (outcome.error or "").startswith("refused")


async def test_refused_redirect_is_not_followed(http_server: HttpTestServer) -> None:
    http_server.route(
        "GET", "/out", status=302, headers={"Location": "http://169.254.169.254/latest/"}
    )
    http_server.route(
        "GET", "/in", status=307, headers={"Location": f"http://[::1]:{http_server.port}/x"}
    )

    to_metadata = await run(LOOPBACK_ONLY, url=http_server.url_for("/out"))
    to_other_loopback = await run(LOOPBACK_ONLY, url=http_server.url_for("/in"))

    assert "cloud metadata" in (to_metadata.error or "")
    assert "loopback" in (to_other_loopback.error or "")
    assert [r.path for r in http_server.requests] == ["/out", "/in"]


async def test_a_name_resolving_to_an_allowed_address_is_allowed(
    http_server: HttpTestServer,
) -> None:
    # Allowing an address allows the names that resolve to it, and only those.
    http_server.route("GET", "/", body="here")
    addresses = {info[4][0] for info in socket.getaddrinfo("localhost", None)}
    settings = Settings(allowed_hosts=sorted(addresses))

    outcome = await run(settings, url=f"http://localhost:{http_server.port}/")

    assert outcome.success, outcome.error


async def test_refusal_says_why_and_how_to_allow() -> None:
    outcome = await run(Settings(), url="http://10.1.2.3/admin")

    assert outcome.error == (
        "refused 'http://10.1.2.3/admin': a private address; allow it with "
        "CONVEYOR_ALLOWED_HOSTS or CONVEYOR_ALLOW_PRIVATE_NETWORKS"
    )


async def test_context_without_settings_uses_the_default_policy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CONVEYOR_ALLOW_PRIVATE_NETWORKS", raising=False)
    monkeypatch.delenv("CONVEYOR_ALLOWED_HOSTS", raising=False)

    outcome = await run(None, url="http://127.0.0.1:9/")

    assert not outcome.success
    assert "loopback" in (outcome.error or "")


# What the operator can open up.


@pytest.mark.parametrize(
    ("settings", "host"),
    [
        (Settings(allow_private_networks=True), "localhost"),
        (Settings(allowed_hosts=["localhost"]), "localhost"),
        (Settings(allowed_hosts=["127.0.0.0/8", "::1"]), "localhost"),
        (Settings(allowed_hosts=["127.0.0.0/8"]), "127.1"),
        (Settings(allowed_hosts=["127.0.0.1"]), "2130706433"),
    ],
)
async def test_allowed_hosts_and_networks_are_reached(
    http_server: HttpTestServer, settings: Settings, host: str
) -> None:
    seen: list[RecordedRequest] = []
    http_server.route("GET", "/", lambda r: seen.append(r) or Reply(200, {"ok": True}))

    outcome = await run(settings, url=f"http://{host}:{http_server.port}/ping")

    assert outcome.success, outcome.error
    assert outcome.outputs["body"] == {"ok": True}
    assert seen[0].path == "/ping"


async def test_every_resolved_address_must_be_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    # A name with one allowed and one internal address (a split or rebinding DNS answer) is
    # refused: the client may connect to either. The answer is made up here, so nothing is
    # looked up and nothing connects.
    def answer(host: str, *args: Any, **kwargs: Any) -> list[Any]:
        assert host == "localhost"
        stream = socket.SOCK_STREAM
        return [
            (socket.AF_INET, stream, 6, "", ("127.0.0.1", 0)),
            (socket.AF_INET, stream, 6, "", ("10.0.0.1", 0)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", answer)

    with pytest.raises(BlockedAddressError, match=r"'localhost' resolves to 10\.0\.0\.1"):
        await check_url("http://localhost/", Settings(allowed_hosts=["127.0.0.1"]))


async def test_check_url_without_resolving() -> None:
    await check_url("http://example.invalid/", Settings(), resolve=False)
    with pytest.raises(BlockedAddressError, match="loopback host name"):
        await check_url("http://app.localhost/", Settings(), resolve=False)
    with pytest.raises(BlockedAddressError, match="cloud metadata"):
        await check_url("http://metadata.google.internal./", Settings(), resolve=False)


def test_public_addresses_have_no_reason_to_be_refused() -> None:
    for text in ("93.184.216.34", "2606:4700::1111", "8.8.8.8"):
        address = parse_address(text)
        assert address is not None
        assert blocked_reason(address) is None
