"""Temporal over TLS: a CA, mTLS, a server name override and an API key, from the settings.

The TLS endpoint is a real one on loopback: `tls_proxy` terminates TLS (requiring a client
certificate when asked) in front of the session's dev server.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest

from conveyor.actions import ActionRegistry
from conveyor.backends.temporal.backend import TemporalBackend
from conveyor.backends.temporal.connection import (
    TemporalConnectionError,
    connect,
    describe,
    tls_config,
)
from conveyor.client import Client
from conveyor.config import Settings
from conveyor.errors import ConfigurationError
from tests.temporal.tls_proxy import Pki, make_pki, tls_proxy

pytestmark = [pytest.mark.temporal, pytest.mark.slow]

CONVEYOR = str(Path(sys.executable).parent / "conveyor")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """The cluster's CA, its frontend's certificate (for 127.0.0.1) and a client certificate."""
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def stranger(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """Another CA, whose frontend certificate is for `temporal.internal` only."""
    return make_pki(tmp_path_factory.mktemp("stranger"), server_names=("temporal.internal",))


@pytest.fixture
def mtls(temporal_server: str, pki: Pki) -> Iterator[str]:
    """A frontend on loopback that requires TLS and a client certificate from the CA."""
    with tls_proxy(temporal_server, pki, require_client_cert=True) as address:
        yield address


def tls_settings(address: str, pki: Pki, **more: object) -> Settings:
    """Settings for `address` with `pki`'s CA and client certificate, `more` on top."""
    values: dict[str, object] = {
        "backend": "temporal",
        "temporal_address": address,
        "temporal_task_queue_prefix": f"tls-{uuid.uuid4().hex[:12]}",
        "temporal_tls_ca_path": pki.ca,
        "temporal_tls_cert_path": pki.client_cert,
        "temporal_tls_key_path": pki.client_key,
    }
    return Settings.model_validate(values | more)


def environment(settings: Settings) -> dict[str, str]:
    """The CONVEYOR_* variables that give `settings` to a subprocess."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    for name in (
        "backend",
        "temporal_address",
        "temporal_task_queue_prefix",
        "temporal_tls_ca_path",
        "temporal_tls_cert_path",
        "temporal_tls_key_path",
        "temporal_tls_server_name",
    ):
        value = getattr(settings, name)
        if value is not None:
            env[f"CONVEYOR_{name.upper()}"] = str(value)
    return env


async def test_a_client_and_a_worker_run_an_action_over_mtls(mtls: str, pki: Pki) -> None:
    settings = tls_settings(mtls, pki)
    worker = subprocess.Popen(  # noqa: ASYNC220 - started once, read line by line below
        [CONVEYOR, "worker", "--grace", "1"],
        env=environment(settings),
        stderr=subprocess.PIPE,
        text=True,
    )
    assert worker.stderr is not None
    try:
        said = []
        for line in worker.stderr:
            said.append(line.rstrip())
            if line.startswith("polling:"):
                break
        assert said[0] == f"worker: Temporal {mtls}, namespace default (mTLS, CA {pki.ca})", said
        backend = TemporalBackend(ActionRegistry.default(), settings)
        async with Client(backend) as client:
            run_id = await client.start_action("log", {"message": "over mTLS"})
            run = await client.wait(run_id, timeout=60)
        assert run.status.value == "completed"
        assert run.step("action").outputs["message"] == "over mTLS"
    finally:
        worker.terminate()
        worker.communicate(timeout=60)
    assert worker.returncode == 0


def worker_error(settings: Settings) -> list[str]:
    """What `conveyor worker` says on stderr when it cannot start, checking it exits 1."""
    done = subprocess.run(
        [CONVEYOR, "worker"],
        env=environment(settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    return done.stderr.strip().splitlines()


async def test_a_wrong_ca_is_one_clear_line(mtls: str, pki: Pki, stranger: Pki) -> None:
    settings = tls_settings(mtls, pki, temporal_tls_ca_path=stranger.ca)
    expected = (
        f"cannot connect to Temporal at {mtls}: the server's certificate is not signed by the "
        f"CA in CONVEYOR_TEMPORAL_TLS_CA_PATH ({stranger.ca})"
    )
    with pytest.raises(TemporalConnectionError) as raised:
        await connect(settings)
    assert str(raised.value) == expected
    assert raised.value.__cause__ is None
    assert worker_error(settings) == [f"error: {expected}"]


async def test_a_missing_client_certificate_is_one_clear_line(mtls: str, pki: Pki) -> None:
    settings = Settings(backend="temporal", temporal_address=mtls, temporal_tls_ca_path=pki.ca)
    expected = (
        f"cannot connect to Temporal at {mtls}: the server closed the TLS connection after the "
        "handshake, as a server that requires a client certificate does (set "
        "CONVEYOR_TEMPORAL_TLS_CERT_PATH and CONVEYOR_TEMPORAL_TLS_KEY_PATH)"
    )
    with pytest.raises(TemporalConnectionError) as raised:
        await connect(settings)
    assert str(raised.value) == expected
    assert worker_error(settings) == [f"error: {expected}"]
    # The Python client says the same, from the backend `conveyor serve` uses.
    with pytest.raises(TemporalConnectionError, match="requires a client certificate"):
        async with TemporalBackend(ActionRegistry(), settings):
            pass


async def test_plain_grpc_to_a_tls_frontend_says_to_turn_tls_on(mtls: str) -> None:
    with pytest.raises(TemporalConnectionError) as raised:
        await connect(Settings(temporal_address=mtls))
    assert str(raised.value) == (
        f"cannot connect to Temporal at {mtls}: the server closed the connection: if it "
        "serves TLS, set CONVEYOR_TEMPORAL_TLS=true (and CONVEYOR_TEMPORAL_TLS_CA_PATH)"
    )


async def test_the_server_name_override_and_an_api_key(temporal_server: str, stranger: Pki) -> None:
    with tls_proxy(temporal_server, stranger, require_client_cert=False) as address:
        settings = Settings(temporal_address=address, temporal_tls_ca_path=stranger.ca)
        with pytest.raises(TemporalConnectionError) as raised:
            await connect(settings)
        assert str(raised.value) == (
            f"cannot connect to Temporal at {address}: the server's certificate is for "
            "temporal.internal, not for the host dialled: set "
            "CONVEYOR_TEMPORAL_TLS_SERVER_NAME to the name it is for"
        )
        named = Settings.model_validate(
            settings.model_dump()
            | {"temporal_tls_server_name": "temporal.internal", "temporal_api_key": "the-api-key"}
        )
        client = await connect(named)
        described = await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace="default")
        )
        assert described.namespace_info.name == "default"
        assert client.service_client.config.api_key == "the-api-key"
        assert describe(named) == (f"TLS, CA {stranger.ca}, server name temporal.internal, API key")


def test_an_api_key_alone_turns_tls_on_and_plain_stays_plain() -> None:
    assert tls_config(Settings()) is False
    assert tls_config(Settings(temporal_api_key="k")) is not False
    assert tls_config(Settings(temporal_api_key="k", temporal_tls=False)) is False
    assert describe(Settings()) == "plain gRPC"


def test_an_unreadable_certificate_or_a_certificate_without_its_key_is_named(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(ConfigurationError) as raised:
        tls_config(Settings(temporal_tls_ca_path=missing))
    assert str(raised.value) == (
        f"CONVEYOR_TEMPORAL_TLS_CA_PATH: cannot read {missing}: No such file or directory"
    )
    with pytest.raises(ValueError, match="temporal_tls_key_path: needed with temporal_tls_cert"):
        Settings(temporal_tls_cert_path=missing)
