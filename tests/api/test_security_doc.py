"""docs/security.md is run: its webhook verification example checks real deliveries, and its
command to make a key makes one."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from fastapi import FastAPI, Request, Response

from conveyor.actions import ActionRegistry
from conveyor.publishing.signing import signed_headers
from tests.api.live import serve
from tests.api.test_publishing import LIFECYCLE, fast, running, start, until

DOC = Path(__file__).parents[2] / "docs" / "security.md"
SECRET = "whsec_" + "c2VjcmV0LW9mLXRoZS1yZWNlaXZlcg=="


def _example() -> dict[str, Any]:
    """The names the doc's Python example defines."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## Verifying webhooks", 1)[1]
    [code] = re.findall(r"```python\n(.*?)```", section.split("\n## ", 1)[0], re.S)
    names: dict[str, Any] = {}
    exec(compile(code, str(DOC), "exec"), names)  # Our own documentation, run as written.
    return names


async def test_the_verification_example_accepts_real_deliveries_and_refuses_the_rest(
    tmp_path: Path, action_registry: ActionRegistry
) -> None:
    example = _example()
    accept = example["accept"]
    received: list[tuple[bytes, dict[str, str]]] = []
    messages: list[dict[str, Any]] = []

    receiver = FastAPI()

    @receiver.post("/hook")
    async def hook(request: Request) -> Response:
        body, headers = await request.body(), dict(request.headers)
        received.append((body, headers))
        verdict = accept(SECRET, body, headers)
        if verdict is None:
            return Response(status_code=401)
        messages.append(verdict[0])
        return Response(status_code=204)

    async with serve(receiver) as hook_url, running(fast(tmp_path), action_registry) as api:
        await start(api.http, webhooks=[{"url": hook_url + "/hook", "secret": SECRET}])
        await until(lambda: len(messages) == len(LIFECYCLE))
    assert [m["type"] for m in messages] == LIFECYCLE

    body, headers = received[0]
    # A repeat is genuine but not new.
    assert accept(SECRET, body, headers) == (messages[0], False)
    # Altered, forged, unsigned, moved in time, or too old: refused.
    assert accept(SECRET, body.replace(b"conveyor", b"Conveyor"), headers) is None
    assert accept("whsec_" + "b3RoZXItc2VjcmV0", body, headers) is None
    assert accept(SECRET, body, {k: v for k, v in headers.items() if "signature" not in k}) is None
    moved = {**headers, "webhook-timestamp": str(int(time.time()) + 1)}
    assert accept(SECRET, body, moved) is None
    old = int(time.time()) - example["TOLERANCE"] - 1
    assert accept(SECRET, body, signed_headers(SECRET, "d-old", old, body)) is None
    assert accept(SECRET, body, {}) is None


def test_the_command_that_makes_a_key_makes_one() -> None:
    [command] = re.findall(r'`python -c "(.*?)"`', DOC.read_text(encoding="utf-8"))
    made = subprocess.run(
        [sys.executable, "-c", command], capture_output=True, text=True, check=True
    )
    Fernet(made.stdout.strip().encode())  # Raises for anything but a Fernet key.
