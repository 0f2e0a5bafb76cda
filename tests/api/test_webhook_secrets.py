"""Webhook secrets at rest: encrypted in the database, with a key that is not in it."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr, ValidationError

from conveyor.actions import ActionRegistry
from conveyor.config import Settings
from conveyor.publishing.outbox import Outbox
from conveyor.publishing.secrets import SecretBox, SecretUnreadable, key_file
from conveyor.publishing.specs import Target
from tests.api.live import serve
from tests.api.test_publishing import LIFECYCLE, Receiver, fast, running, start, until

SECRET = "the-webhook-secret-nobody-may-read"


def _database_bytes(settings: Settings) -> bytes:
    """Every byte SQLite keeps of the database: the file, its WAL and shared memory."""
    found = b""
    for suffix in ("", "-wal", "-shm"):
        path = Path(str(settings.db_path) + suffix)
        if path.exists():
            found += path.read_bytes()
    return found


async def test_a_webhook_secret_is_stored_encrypted_and_still_signs(
    tmp_path: Path, action_registry: ActionRegistry
) -> None:
    receiver = Receiver(secret=SECRET)
    settings = fast(tmp_path)
    async with serve(receiver.app()) as hook_url, running(settings, action_registry) as api:
        run = await start(api.http, webhooks=[{"url": hook_url + "/hook", "secret": SECRET}])
        await until(lambda: "conveyor.run.completed" in receiver.types())
        [(stored,)] = api.service.store.db.execute("SELECT secret FROM publish_targets")
        assert receiver.types() == LIFECYCLE
        assert receiver.bad_signatures == 0
        assert run["run_id"]

    assert stored.startswith("fernet:")
    assert SECRET not in stored
    assert SECRET.encode() not in _database_bytes(settings)
    # Made beside the database, readable by its owner only.
    path = key_file(settings)
    assert path == tmp_path / "conveyor.db.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert SecretBox.from_settings(settings).reveal(stored) == SECRET


async def test_a_configured_key_is_used_and_rotated(
    tmp_path: Path, action_registry: ActionRegistry
) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    receiver = Receiver(secret=SECRET)
    first = fast(tmp_path, secrets_key=SecretStr(old))
    async with serve(receiver.app()) as hook_url, running(first, action_registry) as api:
        await start(api.http, webhooks=[{"url": hook_url + "/hook", "secret": SECRET}])
        await until(lambda: "conveyor.run.completed" in receiver.types())
        [(stored,)] = api.service.store.db.execute("SELECT secret FROM publish_targets")
    assert not key_file(first).exists()

    rotated = SecretBox.from_settings(fast(tmp_path, secrets_key=SecretStr(f"{new},{old}")))
    assert rotated.reveal(stored) == SECRET
    assert rotated.reveal(rotated.seal(SECRET)) == SECRET
    with pytest.raises(SecretUnreadable, match="CONVEYOR_SECRETS_KEY"):
        SecretBox.from_settings(fast(tmp_path, secrets_key=SecretStr(new))).reveal(stored)


async def test_a_secret_no_key_opens_fails_its_deliveries_clearly(
    tmp_path: Path, action_registry: ActionRegistry
) -> None:
    receiver = Receiver(secret=SECRET)
    settings = fast(tmp_path, secrets_key=SecretStr(Fernet.generate_key().decode()))
    async with serve(receiver.app()) as hook_url:
        async with running(settings, action_registry) as api:
            body = {"url": hook_url + "/hook", "secret": SECRET}
            run = await start(api.http, pipeline=_waiting(), webhooks=[body])
            await until(lambda: receiver.types()[:1] == ["conveyor.run.started"])
        # Started again with another key: the stored secret cannot be opened.
        other = settings.model_copy(
            update={"secrets_key": SecretStr(Fernet.generate_key().decode())}
        )
        async with running(other, action_registry) as api:
            await api.http.post(f"/runs/{run['run_id']}/cancel")
            url = f"/runs/{run['run_id']}/deliveries"
            async with asyncio.timeout(30):
                while not (  # noqa: ASYNC110 - read over HTTP
                    failed := (await api.http.get(url, params={"status": "failed"})).json()["items"]
                ):
                    await asyncio.sleep(0.02)
    assert "cannot be decrypted" in failed[0]["last_error"]
    assert receiver.types()[:1] == ["conveyor.run.started"]
    assert receiver.bad_signatures == 0


def _waiting() -> dict[str, object]:
    return {"name": "waits", "steps": [{"id": "nap", "action": "delay", "params": {"seconds": 60}}]}


async def test_secrets_stored_in_plain_before_are_encrypted_at_start(
    tmp_path: Path, action_registry: ActionRegistry
) -> None:
    settings = fast(tmp_path)
    async with running(settings, action_registry) as api:
        outbox = Outbox(api.service.store)
        outbox.add_targets(
            [Target("t-old", "r-old", 0, "webhook", "http://127.0.0.1:9/x", SECRET)], now=0
        )
    async with running(settings, action_registry) as api:
        [(stored,)] = api.service.store.db.execute(
            "SELECT secret FROM publish_targets WHERE id = 't-old'"
        )
    assert stored.startswith("fernet:")
    assert SecretBox.from_settings(settings).reveal(stored) == SECRET


def test_a_key_that_is_no_fernet_key_is_refused_when_read(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(db_path=tmp_path / "x.db", secrets_key=SecretStr("not-a-key"))
    [error] = caught.value.errors()
    assert error["loc"] == ("secrets_key",)
    assert "key 1 is not a Fernet key (32 bytes in URL-safe base64" in error["msg"]
    good = Fernet.generate_key().decode()
    with pytest.raises(ValidationError, match="key 2 is not a Fernet key"):
        Settings(db_path=tmp_path / "x.db", secrets_key=SecretStr(f"{good},short"))


async def test_a_standard_webhooks_secret_must_be_base64(
    tmp_path: Path, action_registry: ActionRegistry
) -> None:
    async with running(fast(tmp_path), action_registry) as api:
        hook = {"url": "http://127.0.0.1:9/hook", "secret": "whsec_not*base64*at*all"}
        response = await api.http.post("/runs", json={"pipeline": _waiting(), "webhooks": [hook]})
        assert response.status_code == 422, response.text
        [field] = response.json()["error"]["fields"]
        assert field["path"] == "webhooks[0].secret"
        assert "a secret starting with 'whsec_' must be base64" in field["message"]
        assert api.service.store.db.execute("SELECT count(*) FROM runs").fetchone()[0] == 0
