"""Both service invokers against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import SecretStr

from conveyor.actions import ActionContext, ServiceInvoker
from conveyor.actions.invokers import DaprInvoker, DirectHttpInvoker, invoker_from_settings
from conveyor.config import Settings
from conveyor.errors import ServiceInvocationError, ServiceStatusError
from tests.support.http_server import HttpTestServer, RecordedRequest, Reply, closed_port_url


@pytest.fixture
async def direct(http_server: HttpTestServer) -> AsyncIterator[DirectHttpInvoker]:
    async with DirectHttpInvoker({"billing": http_server.url + "/api/"}) as invoker:
        yield invoker


@pytest.fixture
async def dapr(http_server: HttpTestServer) -> AsyncIterator[DaprInvoker]:
    async with DaprInvoker(http_server.url, api_token="s3cret") as invoker:
        yield invoker


# Direct HTTP.


async def test_direct_posts_json_and_returns_decoded_json(
    http_server: HttpTestServer, direct: DirectHttpInvoker
) -> None:
    http_server.route("POST", "/api/invoices", status=201, body={"id": 7, "items": [1, 2]})

    answer = await direct.invoke("billing", "/invoices", data={"amount": 12.5})

    assert answer == {"id": 7, "items": [1, 2]}
    (request,) = http_server.requests
    assert request.method == "POST"
    assert request.path == "/api/invoices"
    assert request.json == {"amount": 12.5}
    assert request.header("content-type") == "application/json"


async def test_direct_sends_query_params_and_returns_text(
    http_server: HttpTestServer, direct: DirectHttpInvoker
) -> None:
    http_server.route("GET", "/api/status", body="all good")

    answer = await direct.invoke(
        "billing", "status", http_method="get", params={"verbose": "1", "page": 2, "skip": None}
    )

    assert answer == "all good"
    (request,) = http_server.requests
    assert request.method == "GET"
    assert request.query == {"verbose": ["1"], "page": ["2"]}
    assert request.body == b""


async def test_direct_returns_none_for_an_empty_body(
    http_server: HttpTestServer, direct: DirectHttpInvoker
) -> None:
    http_server.route("DELETE", "/api/invoices/7", status=204)

    assert await direct.invoke("billing", "invoices/7", http_method="DELETE") is None


async def test_direct_json_without_content_type_is_still_decoded(
    http_server: HttpTestServer, direct: DirectHttpInvoker
) -> None:
    http_server.route("POST", "/api/raw", body=b'{"a": 1}', headers={"Content-Type": ""})

    assert await direct.invoke("billing", "raw") == {"a": 1}


async def test_direct_error_status_keeps_the_decoded_body(
    http_server: HttpTestServer, direct: DirectHttpInvoker
) -> None:
    http_server.route("POST", "/api/invoices", status=422, body={"detail": "amount must be > 0"})

    with pytest.raises(ServiceInvocationError) as caught:
        await direct.invoke("billing", "invoices", data={"amount": -1})

    error = caught.value
    assert error.status_code == 422
    assert error.body == {"detail": "amount must be > 0"}
    assert error.app_id == "billing"
    assert "422" in str(error)
    assert "amount must be > 0" in str(error)


async def test_an_error_status_is_also_an_httpx_status_error(
    http_server: HttpTestServer, direct: DirectHttpInvoker
) -> None:
    # Actions written for BudPipeline catch httpx.HTTPStatusError around invoke_service.
    http_server.route("GET", "/api/invoices/9", status=404, body={"detail": "no invoice 9"})

    with pytest.raises(httpx.HTTPStatusError) as caught:
        await direct.invoke("billing", "invoices/9", http_method="GET")

    assert isinstance(caught.value, ServiceStatusError)
    assert caught.value.response.status_code == 404
    assert caught.value.request.url.path == "/api/invoices/9"


async def test_direct_error_status_with_text_body(
    http_server: HttpTestServer, direct: DirectHttpInvoker
) -> None:
    http_server.route("GET", "/api/broken", status=503, body="down for maintenance")

    with pytest.raises(ServiceInvocationError, match=r"503.*down for maintenance") as caught:
        await direct.invoke("billing", "broken", http_method="GET")

    assert caught.value.body == "down for maintenance"


async def test_direct_timeout_says_how_long_it_waited(
    http_server: HttpTestServer, direct: DirectHttpInvoker
) -> None:
    http_server.route("POST", "/api/slow", body={"late": True}, delay=3)

    with pytest.raises(ServiceInvocationError, match=r"timed out after 0\.3 s") as caught:
        await direct.invoke("billing", "slow", timeout_seconds=0.3)

    assert caught.value.status_code is None
    assert isinstance(caught.value.__cause__, httpx.TimeoutException)


async def test_direct_connection_refused_names_the_url() -> None:
    url = closed_port_url()
    async with DirectHttpInvoker({"gone": url}) as invoker:
        with pytest.raises(ServiceInvocationError, match="could not connect") as caught:
            await invoker.invoke("gone", "anything", timeout_seconds=5)

    assert f"{url}/anything" in str(caught.value)


async def test_direct_unknown_app_id_names_it_and_the_known_ones(
    direct: DirectHttpInvoker,
) -> None:
    with pytest.raises(ServiceInvocationError, match=r"'shipping' \(known: billing\)"):
        await direct.invoke("shipping", "parcels")


async def test_direct_refuses_data_that_is_not_json(direct: DirectHttpInvoker) -> None:
    with pytest.raises(ServiceInvocationError, match="cannot be sent as JSON"):
        await direct.invoke("billing", "invoices", data={"when": object()})


async def test_direct_leaves_a_lent_client_open(http_server: HttpTestServer) -> None:
    http_server.route("GET", "/ping", body="pong")
    async with httpx.AsyncClient() as client:
        invoker = DirectHttpInvoker({"svc": http_server.url}, client=client)
        await invoker.aclose()

        assert await invoker.invoke("svc", "ping", http_method="GET") == "pong"
        assert not client.is_closed


async def test_direct_reuses_one_pooled_client(
    http_server: HttpTestServer, direct: DirectHttpInvoker
) -> None:
    http_server.route("GET", "/api/n", body={"n": 1})

    for _ in range(3):
        await direct.invoke("billing", "n", http_method="GET")

    # One connection served every call: HTTP/1.1 keep-alive through the pool.
    assert len({request.client for request in http_server.requests}) == 1
    assert not direct.client.is_closed
    await direct.aclose()
    assert direct.client.is_closed


# Dapr.


async def test_dapr_uses_the_invoke_path_and_the_api_token(
    http_server: HttpTestServer, dapr: DaprInvoker
) -> None:
    http_server.route("POST", "/v1.0/invoke/budapp/method/endpoints/", body={"workflow_id": "wf-1"})

    answer = await dapr.invoke(
        "budapp",
        "/endpoints/42/delete-workflow",
        data={"callback_topic": "conveyor-events"},
        params={"user_id": "u1"},
    )

    assert answer == {"workflow_id": "wf-1"}
    (request,) = http_server.requests
    assert request.path == "/v1.0/invoke/budapp/method/endpoints/42/delete-workflow"
    assert request.header("dapr-api-token") == "s3cret"
    assert request.query == {"user_id": ["u1"]}
    assert request.json == {"callback_topic": "conveyor-events"}


async def test_dapr_without_token_sends_no_token_header(http_server: HttpTestServer) -> None:
    http_server.route("GET", "/v1.0/invoke/", body="ok")
    async with DaprInvoker(http_server.url + "/") as invoker:
        assert await invoker.invoke("svc", "health", http_method="GET") == "ok"

    assert http_server.requests[0].path == "/v1.0/invoke/svc/method/health"
    assert http_server.requests[0].header("dapr-api-token") is None


async def test_dapr_error_from_the_sidecar_keeps_its_body(
    http_server: HttpTestServer, dapr: DaprInvoker
) -> None:
    sidecar_error = {"errorCode": "ERR_DIRECT_INVOKE", "message": "app id nope not found"}
    http_server.route("POST", "/v1.0/invoke/nope/", status=500, body=sidecar_error)

    with pytest.raises(ServiceInvocationError, match="ERR_DIRECT_INVOKE") as caught:
        await dapr.invoke("nope", "x")

    assert caught.value.status_code == 500
    assert caught.value.body == sidecar_error
    assert caught.value.app_id == "nope"


async def test_dapr_timeout(http_server: HttpTestServer, dapr: DaprInvoker) -> None:
    http_server.route("POST", "/v1.0/invoke/", body={}, delay=3)

    with pytest.raises(ServiceInvocationError, match=r"timed out after 0\.25 s"):
        await dapr.invoke("svc", "slow", timeout_seconds=0.25)


async def test_dapr_connection_refused_names_the_url() -> None:
    url = closed_port_url()
    async with DaprInvoker(url) as invoker:
        with pytest.raises(ServiceInvocationError, match="could not connect") as caught:
            await invoker.invoke("svc", "m", timeout_seconds=5)

    assert f"{url}/v1.0/invoke/svc/method/m" in str(caught.value)


# Configuration.


def test_settings_choose_dapr_when_an_endpoint_is_set() -> None:
    settings = Settings(
        dapr_http_endpoint="http://127.0.0.1:3500",
        dapr_api_token=SecretStr("t"),
        services={"a": "http://127.0.0.1:1"},
    )

    invoker = invoker_from_settings(settings)

    assert isinstance(invoker, DaprInvoker)
    assert isinstance(invoker, ServiceInvoker)
    assert invoker.url_for("a", "m") == "http://127.0.0.1:3500/v1.0/invoke/a/method/m"


def test_settings_choose_direct_http_otherwise() -> None:
    invoker = invoker_from_settings(Settings(services={"a": "http://127.0.0.1:1/base"}))

    assert isinstance(invoker, DirectHttpInvoker)
    assert invoker.url_for("a", "/m") == "http://127.0.0.1:1/base/m"


async def test_action_context_invokes_through_the_configured_invoker(
    http_server: HttpTestServer,
) -> None:
    def echo(request: RecordedRequest) -> Reply:
        return Reply(200, {"got": request.json, "q": request.param("k")})

    http_server.route("PUT", "/svc/", echo)
    context = ActionContext(
        step_id="s",
        execution_id="r",
        settings=Settings(services={"svc": http_server.url + "/svc"}),
    )

    answer = await context.invoke_service(
        "svc", "items/1", http_method="PUT", data=[1], params={"k": "v"}
    )

    assert answer == {"got": [1], "q": "v"}
    assert isinstance(context.services, DirectHttpInvoker)
    await context.services.aclose()
