"""An action package written in BudPipeline's style runs on Conveyor with its imports changed.

The distribution under tests/plugins/conveyor_budstyle_plugin declares its action with no
version, with ``examples=``, ``required_permissions``, ``docs_url``, a ``PROVIDER_REF`` param,
``ConditionalVisibility`` and ``RetryPolicy(backoff_multiplier=...)``, and catches
``httpx.HTTPStatusError`` around `invoke_service`. It is built and installed with pip, and a
BudPipeline DAG using it runs with `conveyor run` against a real service on loopback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.acceptance.test_cli_run import command
from tests.support.http_server import HttpTestServer, Reply
from tests.support.plugins import PLUGINS, environment_with, install_plugins

pytestmark = pytest.mark.slow

BUDSTYLE_PLUGIN = PLUGINS / "conveyor_budstyle_plugin"

DAG: dict[str, Any] = {
    "name": "quotas",
    "version": "1.0",
    "parameters": [{"name": "provider", "type": "provider_ref", "required": False}],
    "settings": {"fail_fast": False},
    "steps": [
        {
            "id": team,
            "name": f"Quota of {team}",
            "action": "quota_check",
            "params": {"team": team, "provider": "{{ params.provider | default('any') }}"},
            "outputs": ["remaining", "status", "http_status"],
            "on_failure": "Continue",
        }
        for team in ("research", "ghost", "broken")
    ],
    "outputs": {
        "research": "{{ steps.research.outputs.remaining }}",
        "ghost": "{{ steps.ghost.outputs.status }}",
        "broken": "{{ steps.broken.outputs.http_status }}",
    },
}

INSPECT = textwrap.dedent(
    """
    import json

    from budstyle_actions.quota import META, QuotaCheckAction
    from conveyor.actions import ActionRegistry

    registry = ActionRegistry.default()
    meta = registry.get_meta("quota_check")
    print(json.dumps({
        "class_meta_is_meta": QuotaCheckAction.meta is META,
        "version": meta.version,
        "idempotent": meta.idempotent,
        "example": meta.examples[0].title,
        "permissions": meta.required_permissions,
        "docs_url": meta.docs_url,
        "backoff": meta.retry_policy.backoff_multiplier,
        "unknown": registry.get_meta("no_such_action"),
        "validate": meta.validate(),
        "get_param": meta.get_param("provider").type,
    }))
    """
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_plugins(tmp_path_factory.mktemp("budstyle") / "site", BUDSTYLE_PLUGIN)


def environment(site: Path, server: HttpTestServer) -> dict[str, str]:
    env = {k: v for k, v in environment_with(site).items() if not k.startswith("CONVEYOR_")}
    env["CONVEYOR_SERVICES"] = json.dumps({"budapp": server.url})
    env["CONVEYOR_ALLOWED_HOSTS"] = json.dumps(["127.0.0.1"])
    return env


def test_the_ported_action_keeps_budpipelines_declaration(site: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", INSPECT],
        capture_output=True,
        text=True,
        env={**os.environ, **environment_with(site)},
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "class_meta_is_meta": True,  # @register_action(META) set it
        "version": "1.0.0",
        "idempotent": True,
        "example": "Check a team",
        "permissions": ["quota:read"],
        "docs_url": "https://docs.example.org/actions/quota_check",
        "backoff": 1.5,
        "unknown": None,
        "validate": [],
        "get_param": "provider_ref",
    }


def test_a_dag_using_it_runs_and_its_http_errors_are_caught(site: Path, tmp_path: Path) -> None:
    with HttpTestServer() as server:
        server.route("GET", "/quotas/research", body={"remaining": 42})
        server.route("GET", "/quotas/ghost", Reply(404, {"detail": "no such team"}))
        server.route("GET", "/quotas/broken", Reply(500, {"detail": "database down"}))
        path = tmp_path / "quotas.json"
        path.write_text(json.dumps(DAG), encoding="utf-8")

        done = subprocess.run(
            [*command(), "run", str(path), "--db", str(tmp_path / "c.db"), "--json"],
            capture_output=True,
            text=True,
            env=environment(site, server),
            timeout=120,
            check=False,
        )
        requests = [(r.path, r.query) for r in server.requests]

    assert done.returncode == 0, done.stdout + done.stderr
    run = json.loads(done.stdout)
    assert run["status"] == "completed"
    assert run["outputs"] == {"research": 42, "ghost": "unknown", "broken": 500}
    broken = next(step for step in run["steps"] if step["step_id"] == "broken")
    assert broken["status"] == "failed"
    assert broken["error"] == "quota service answered 500"
    assert ("/quotas/research", {"provider": ["any"]}) in requests
