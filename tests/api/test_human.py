"""Human input over HTTP: list a run's open requests, approve or reject them, and the errors."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from conveyor.api import Service
from tests.api.conftest import MakeKey
from tests.api.live import client_for

FORM = {
    "type": "object",
    "required": ["ticket"],
    "properties": {
        "ticket": {"type": "string", "pattern": "^T-[0-9]+$"},
        "replicas": {"type": "integer", "minimum": 1},
    },
    "additionalProperties": False,
}


def release(**ask: Any) -> dict[str, Any]:
    """A pipeline that asks for approval, then records who decided and the ticket."""
    return {
        "name": "release",
        "steps": [
            {
                "id": "ask",
                "action": "approval",
                "params": {
                    "title": "Ship {{ params.version }}?",
                    "description": "Production deploy",
                    "form": FORM,
                    **ask,
                },
            },
            {
                "id": "record",
                "action": "set_output",
                "depends_on": ["ask"],
                "params": {"values": {"by": "{{ steps.ask.outputs.decided_by }}"}},
            },
        ],
        "parameters": [{"name": "version", "type": "string", "default": "1.2"}],
        "outputs": {
            "by": "{{ steps.record.outputs.by }}",
            "ticket": "{{ steps.ask.outputs.data.ticket }}",
        },
    }


def branching() -> dict[str, Any]:
    """A pipeline whose approval completes either way and a condition picks the branch."""
    return {
        "name": "branching",
        "steps": [
            {
                "id": "ask",
                "action": "approval",
                "params": {"title": "Go?", "on_reject": "complete"},
            },
            {
                "id": "go",
                "action": "set_output",
                "depends_on": ["ask"],
                "condition": "{{ steps.ask.outputs.decision == 'approve' }}",
                "params": {"values": {"went": True}},
            },
            {
                "id": "stop",
                "action": "set_output",
                "depends_on": ["ask"],
                "condition": "{{ steps.ask.outputs.decision == 'reject' }}",
                "params": {"values": {"reason": "{{ steps.ask.outputs.comment }}"}},
            },
        ],
    }


async def _start(client: httpx.AsyncClient, pipeline: dict[str, Any]) -> str:
    response = await client.post("/runs", json={"pipeline": pipeline})
    assert response.status_code == 201, response.text
    run_id: str = response.json()["run_id"]
    return run_id


async def _requests(
    client: httpx.AsyncClient, run_id: str, count: int = 1, timeout: float = 15
) -> list[dict[str, Any]]:
    """The run's open requests, once there are `count` of them."""
    async with asyncio.timeout(timeout):
        while True:
            response = await client.get(f"/runs/{run_id}/requests")
            assert response.status_code == 200, response.text
            items: list[dict[str, Any]] = response.json()["items"]
            if len(items) >= count:
                return items
            await asyncio.sleep(0.02)


async def test_approve_completes_the_step_with_the_decision(
    server_url: str, make_key: MakeKey, service: Service
) -> None:
    async with client_for(server_url, make_key("alice", "write")) as alice:
        run_id = await _start(alice, release())
        [request] = await _requests(alice, run_id)
        assert request["step_id"] == "ask"
        assert request["index"] is None
        assert request["title"] == "Ship 1.2?"
        assert request["description"] == "Production deploy"
        assert request["form"] == FORM
        assert request["opened_at"] and request["expires_at"] > request["opened_at"]

        answer = await alice.post(
            f"/runs/{run_id}/requests/ask",
            json={"decision": "approve", "data": {"ticket": "T-7"}, "comment": "go"},
        )
        assert answer.status_code == 200, answer.text
        receipt = answer.json()
        assert receipt["delivery"] == "routed"
        assert receipt["step_status"] == "completed"
        assert receipt["decided_by"] == "alice"
        outputs = receipt["outputs"]
        assert {k: outputs[k] for k in ("decision", "data", "decided_by", "comment")} == {
            "decision": "approve",
            "data": {"ticket": "T-7"},
            "decided_by": "alice",
            "comment": "go",
        }
        run = await service.backend.wait(run_id, timeout=15)
        assert run.status == "completed"
        assert run.outputs == {"by": "alice", "ticket": "T-7"}
        assert (await alice.get(f"/runs/{run_id}/requests")).json()["items"] == []


async def test_reject_fails_the_step_by_default(http: httpx.AsyncClient, service: Service) -> None:
    run_id = await _start(http, release())
    await _requests(http, run_id)
    answer = await http.post(
        f"/runs/{run_id}/requests/ask", json={"decision": "reject", "comment": "not today"}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["step_status"] == "failed"
    assert answer.json()["error"] == "rejected by admin: not today"
    run = await service.backend.wait(run_id, timeout=15)
    assert run.status == "failed"
    assert run.step("ask").outputs["decision"] == "reject"
    assert run.step("record").status == "skipped"


async def test_reject_can_complete_so_a_condition_branches(
    http: httpx.AsyncClient, service: Service
) -> None:
    rejected = await _start(http, branching())
    approved = await _start(http, branching())
    await _requests(http, rejected)
    await _requests(http, approved)
    no = await http.post(
        f"/runs/{rejected}/requests/ask", json={"decision": "reject", "comment": "too late"}
    )
    yes = await http.post(f"/runs/{approved}/requests/ask", json={"decision": "approve"})
    assert no.json()["step_status"] == yes.json()["step_status"] == "completed"
    run = await service.backend.wait(rejected, timeout=15)
    assert run.status == "completed"
    assert run.step("go").status == "skipped"
    assert run.step("stop").outputs == {"reason": "too late"}
    run = await service.backend.wait(approved, timeout=15)
    assert run.step("go").outputs == {"went": True}
    assert run.step("stop").status == "skipped"


async def test_data_that_does_not_fit_the_form_is_422_and_changes_nothing(
    http: httpx.AsyncClient, service: Service
) -> None:
    run_id = await _start(http, release())
    [before] = await _requests(http, run_id)
    bad = await http.post(
        f"/runs/{run_id}/requests/ask",
        json={"decision": "approve", "data": {"replicas": "two", "extra": 1}},
    )
    assert bad.status_code == 422, bad.text
    error = bad.json()["error"]
    assert error["type"] == "invalid_input"
    paths = sorted(f["path"] for f in error["fields"])
    assert paths == ["data", "data.replicas", "data.ticket"]
    messages = {f["path"]: f["message"] for f in error["fields"]}
    assert "required" in messages["data.ticket"]
    assert "'extra' was unexpected" in messages["data"]
    pattern = await http.post(
        f"/runs/{run_id}/requests/ask", json={"decision": "approve", "data": {"ticket": "7"}}
    )
    assert [f["path"] for f in pattern.json()["error"]["fields"]] == ["data.ticket"]

    assert service.backend.view(run_id).step("ask").status == "waiting"
    assert await _requests(http, run_id) == [before]
    good = await http.post(
        f"/runs/{run_id}/requests/ask",
        json={"decision": "approve", "data": {"ticket": "T-1", "replicas": 2}},
    )
    assert good.status_code == 200, good.text
    assert (await service.backend.wait(run_id, timeout=15)).status == "completed"


async def test_a_malformed_answer_is_422_by_field(http: httpx.AsyncClient) -> None:
    run_id = await _start(http, release())
    await _requests(http, run_id)
    response = await http.post(
        f"/runs/{run_id}/requests/ask", json={"decision": "maybe", "data": [1], "who": "me"}
    )
    assert response.status_code == 422
    paths = sorted(f["path"] for f in response.json()["error"]["fields"])
    assert paths == ["data", "decision", "who"]


async def test_nothing_open_is_404(http: httpx.AsyncClient) -> None:
    missing = await http.get("/runs/no-such-run/requests")
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "not_found"
    answer = {"decision": "approve", "data": {"ticket": "T-1"}}
    assert (await http.post("/runs/no-such-run/requests/ask", json=answer)).status_code == 404

    run_id = await _start(http, release())
    await _requests(http, run_id)
    for path, words in [
        ("nope", "has no step 'nope'"),
        ("record", "does not ask for input"),
        ("ask/0", "has no items"),
    ]:
        response = await http.post(f"/runs/{run_id}/requests/{path}", json=answer)
        assert response.status_code == 404, (path, response.text)
        assert words in response.json()["error"]["message"]


async def test_the_same_decision_again_is_the_first_answer_and_another_is_409(
    http: httpx.AsyncClient, service: Service
) -> None:
    run_id = await _start(http, release())
    await _requests(http, run_id)
    answer = {"decision": "approve", "data": {"ticket": "T-1"}}
    first = await http.post(f"/runs/{run_id}/requests/ask", json=answer)
    assert first.status_code == 200, first.text
    assert "idempotent-replayed" not in first.headers
    run = await service.backend.wait(run_id, timeout=15)
    timeline = len(await service.backend.timeline(run_id))

    again = await http.post(f"/runs/{run_id}/requests/ask", json=answer)
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"

    for other, words in [
        ({"decision": "reject"}, "admin chose 'approve'; a decision cannot be changed"),
        (
            {"decision": "approve", "data": {"ticket": "T-2"}},
            "admin chose 'approve' with other data or comment; a decision cannot be changed",
        ),
    ]:
        changed = await http.post(f"/runs/{run_id}/requests/ask", json=other)
        assert changed.status_code == 409, changed.text
        assert changed.json()["error"]["message"] == f"step ask was already decided: {words}"
    # Nothing was applied again: the run and its timeline are as the first answer left them.
    assert service.backend.view(run_id) == run
    assert len(await service.backend.timeline(run_id)) == timeline

    cancelled = await _start(http, release())
    await _requests(http, cancelled)
    assert (await http.post(f"/runs/{cancelled}/cancel")).status_code == 200
    late = await http.post(f"/runs/{cancelled}/requests/ask", json=answer)
    assert late.status_code == 409
    assert "cancelled" in late.json()["error"]["message"]


async def test_another_owners_run_is_404_and_a_read_key_is_403(
    server_url: str, make_key: MakeKey
) -> None:
    answer = {"decision": "approve", "data": {"ticket": "T-1"}}
    async with (
        client_for(server_url, make_key("alice", "write")) as alice,
        client_for(server_url, make_key("bob", "write")) as bob,
        client_for(server_url, make_key("alice", "read")) as reader,
        client_for(server_url, None) as anon,
    ):
        run_id = await _start(alice, release())
        await _requests(alice, run_id)
        assert (await bob.get(f"/runs/{run_id}/requests")).status_code == 404
        stolen = await bob.post(f"/runs/{run_id}/requests/ask", json=answer)
        assert stolen.status_code == 404
        assert stolen.json()["error"]["message"] == f"no run with id {run_id!r}"

        assert len(await _requests(reader, run_id)) == 1
        denied = await reader.post(f"/runs/{run_id}/requests/ask", json=answer)
        assert denied.status_code == 403
        assert (await anon.get(f"/runs/{run_id}/requests")).status_code == 401
        assert (await anon.post(f"/runs/{run_id}/requests/ask", json=answer)).status_code == 401
        assert (await alice.get(f"/runs/{run_id}")).json()["steps"][0]["status"] == "waiting"


async def test_only_named_approvers_may_decide(
    server_url: str, make_key: MakeKey, service: Service
) -> None:
    async with (
        client_for(server_url, make_key("alice", "write")) as alice,
        client_for(server_url, make_key("admin", "admin")) as admin,
    ):
        run_id = await _start(alice, release(approvers=["carol"]))
        [request] = await _requests(alice, run_id)
        assert request["approvers"] == ["carol"]
        answer = {"decision": "approve", "data": {"ticket": "T-1"}}
        denied = await admin.post(f"/runs/{run_id}/requests/ask", json=answer)
        assert denied.status_code == 403
        assert denied.json()["error"]["message"] == "only carol may decide step ask"
        assert service.backend.view(run_id).step("ask").status == "waiting"


async def test_no_decision_before_the_timeout_times_the_step_out(
    http: httpx.AsyncClient, service: Service
) -> None:
    run_id = await _start(http, release(timeout_seconds=1))
    [request] = await _requests(http, run_id)
    assert request["expires_at"] is not None
    run = await service.backend.wait(run_id, timeout=20)
    assert run.status == "failed"
    assert run.step("ask").status == "timeout"
    late = await http.post(
        f"/runs/{run_id}/requests/ask", json={"decision": "approve", "data": {"ticket": "T-1"}}
    )
    assert late.status_code == 409
    assert "timeout" in late.json()["error"]["message"]


async def test_each_item_of_a_for_each_approval_is_answered_by_index(
    http: httpx.AsyncClient, service: Service
) -> None:
    pipeline = {
        "name": "per_region",
        "steps": [
            {
                "id": "ask",
                "action": "approval",
                "for_each": ["eu", "us"],
                "params": {"title": "Deploy to {{ item }}?"},
            }
        ],
        "outputs": {"decisions": "{{ steps.ask.outputs | map(attribute='decision') | list }}"},
    }
    run_id = await _start(http, pipeline)
    requests = await _requests(http, run_id, count=2)
    assert [(r["index"], r["title"]) for r in requests] == [
        (0, "Deploy to eu?"),
        (1, "Deploy to us?"),
    ]
    pending = (await http.get("/requests")).json()["items"]
    assert [(r["run_id"], r["index"]) for r in pending] == [(run_id, 0), (run_id, 1)]
    whole = await http.post(f"/runs/{run_id}/requests/ask", json={"decision": "approve"})
    assert whole.status_code == 404
    assert "asks once per item" in whole.json()["error"]["message"]
    assert (
        await http.post(f"/runs/{run_id}/requests/ask/2", json={"decision": "approve"})
    ).status_code == 404
    for index in (1, 0):
        answer = await http.post(
            f"/runs/{run_id}/requests/ask/{index}", json={"decision": "approve"}
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["index"] == index
    run = await service.backend.wait(run_id, timeout=15)
    assert run.status == "completed"
    assert run.outputs == {"decisions": ["approve", "approve"]}


def webhook(form: Any) -> dict[str, Any]:
    """A pipeline whose wait_for_event step carries a form, so a person may answer it."""
    return {
        "name": "webhook",
        "steps": [
            {
                "id": "hook",
                "action": "wait_for_event",
                "params": {"correlation_id": "build-{{ params.n }}", "form": form},
            }
        ],
        "parameters": [{"name": "n", "type": "integer", "default": 1}],
    }


async def test_a_wait_for_event_with_a_form_is_an_input_request_too(
    http: httpx.AsyncClient, service: Service
) -> None:
    approved = await _start(http, webhook(FORM))
    [request] = await _requests(http, approved)
    assert (request["action"], request["title"]) == ("wait_for_event", "Input for step hook")
    assert request["correlation_id"] == "build-1"
    bad = await http.post(f"/runs/{approved}/requests/hook", json={"decision": "approve"})
    assert [f["path"] for f in bad.json()["error"]["fields"]] == ["data.ticket"]
    good = await http.post(
        f"/runs/{approved}/requests/hook", json={"decision": "approve", "data": {"ticket": "T-3"}}
    )
    assert good.status_code == 200, good.text
    assert good.json()["outputs"]["event"]["data"] == {"ticket": "T-3"}
    assert (await service.backend.wait(approved, timeout=15)).status == "completed"

    rejected = await _start(http, webhook(FORM))
    await _requests(http, rejected)
    no = await http.post(f"/runs/{rejected}/requests/hook", json={"decision": "reject"})
    assert no.json()["step_status"] == "failed"
    assert no.json()["error"] == "rejected by admin"


async def test_a_wait_whose_form_is_no_json_schema_cannot_be_answered(
    http: httpx.AsyncClient, service: Service
) -> None:
    run_id = await _start(http, webhook({"type": "nonsense"}))
    await _requests(http, run_id)
    response = await http.post(f"/runs/{run_id}/requests/hook", json={"decision": "approve"})
    assert response.status_code == 409
    assert "the form of step hook is not a valid JSON schema" in response.json()["error"]["message"]
    assert service.backend.view(run_id).step("hook").status == "waiting"


async def test_a_step_that_has_not_opened_its_request_yet_is_404(
    http: httpx.AsyncClient, service: Service
) -> None:
    pipeline = {
        "name": "later",
        "steps": [
            {"id": "nap", "action": "delay", "params": {"seconds": 600}},
            {"id": "ask", "action": "approval", "depends_on": ["nap"], "params": {"title": "x"}},
        ],
    }
    run_id = await _start(http, pipeline)
    assert (await http.get(f"/runs/{run_id}/requests")).json()["items"] == []
    response = await http.post(f"/runs/{run_id}/requests/ask", json={"decision": "approve"})
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "nothing is open for step ask (it is pending)"
    await http.post(f"/runs/{run_id}/cancel")
