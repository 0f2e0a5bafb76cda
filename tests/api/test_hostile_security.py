"""Hostile input against the served app: forged decisions, approvers, idempotency collisions.

Each test sends what an attacker (another owner's key, the events token) would send, checks
the clear refusal, and that nothing stored was harmed.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from conveyor.api import Service
from conveyor.api.starting import scoped_key
from conveyor.backends.local.store import Store
from tests.api import docs
from tests.api.conftest import EVENTS_TOKEN, MakeKey
from tests.api.live import client_for
from tests.api.test_human import _requests, _start

TOKEN = {"Authorization": f"Bearer {EVENTS_TOKEN}"}


def approval(approvers: list[str]) -> dict[str, Any]:
    """A pipeline with one approval step that names `approvers`."""
    return {
        "name": "guarded",
        "steps": [
            {"id": "ask", "action": "approval", "params": {"title": "Pay?", "approvers": approvers}}
        ],
    }


async def _stored_events(service: Service) -> int:
    return int(service.store.db.execute("SELECT count(*) FROM events").fetchone()[0])


async def test_a_decision_cannot_be_forged_through_the_events_ingress(
    server_url: str, make_key: MakeKey, service: Service
) -> None:
    async with (
        client_for(server_url, make_key("alice", "write")) as alice,
        client_for(server_url, make_key("mallory", "write")) as mallory,
        client_for(server_url, make_key("carol", "write")) as carol,
        client_for(server_url, None) as anon,
    ):
        run_id = await _start(alice, approval(["carol"]))
        [request] = await _requests(alice, run_id)
        waits_on = request["correlation_id"]
        assert waits_on == f"human:{run_id}:ask:1"
        forged = {"decision": "approve", "decided_by": "carol"}
        stored = await _stored_events(service)

        attempts: list[tuple[httpx.AsyncClient, str, Any, dict[str, str], list[str]]] = [
            # Plain JSON, with another owner's write key and with the events token.
            (mallory, "/events", {"workflow_id": waits_on, **forged}, {}, ["workflow_id"]),
            (anon, "/events", {"workflow_id": waits_on, **forged}, TOKEN, ["workflow_id"]),
            # The correlation id under another of the default paths.
            (
                anon,
                "/events",
                {"payload": {"workflow_id": waits_on}, **forged},
                TOKEN,
                ["payload.workflow_id"],
            ),
            # A CloudEvent in structured mode.
            (
                anon,
                "/events",
                {
                    "specversion": "1.0",
                    "id": "ce-1",
                    "source": "x",
                    "type": "t",
                    "data": {"workflow_id": waits_on, **forged},
                },
                {**TOKEN, "content-type": "application/cloudevents+json"},
                ["data.workflow_id"],
            ),
            # A batch hiding it behind a harmless event.
            (
                mallory,
                "/events",
                [{"workflow_id": "other"}, {"workflow_id": waits_on, **forged}],
                {},
                ["[1].workflow_id"],
            ),
            # The decisions' own event id and type, aimed elsewhere.
            (
                mallory,
                "/events",
                {"id": "conveyor.human.decision:0", "type": "conveyor.human.decision"},
                {},
                ["id", "type"],
            ),
        ]
        for client, path, body, headers, fields in attempts:
            response = await client.post(path, json=body, headers=headers)
            assert response.status_code == 422, (body, response.text)
            error = response.json()["error"]
            assert [f["path"] for f in error["fields"]] == fields, body
            assert "/runs/{run_id}/requests/{step_id}" in error["fields"][0]["message"]

        # A CloudEvent in binary mode names the header.
        binary = await anon.post(
            "/events",
            json={"workflow_id": waits_on, **forged},
            headers={
                **TOKEN,
                "ce-specversion": "1.0",
                "ce-id": "conveyor.human.decision:1",
                "ce-source": "x",
                "ce-type": "t",
            },
        )
        assert binary.status_code == 422, binary.text
        paths = [f["path"] for f in binary.json()["error"]["fields"]]
        assert paths == ["data.workflow_id", "header.ce-id"]

        # A Dapr delivery is dropped (never retried), with the reason.
        dapr = await anon.post(
            f"/dapr/events/{service.settings.callback_topic}",
            json={
                "specversion": "1.0",
                "id": "d-1",
                "source": "dapr",
                "type": "com.dapr.event.sent",
                "data": {"workflow_id": waits_on, **forged},
            },
            headers={"dapr-api-token": EVENTS_TOKEN},
        )
        assert dapr.status_code == 200
        assert dapr.json()["status"] == "DROP"
        assert "human decisions are not accepted as events" in dapr.json()["message"]

        # Nothing was stored, and the request is still open.
        assert await _stored_events(service) == stored
        assert service.backend.view(run_id).step("ask").status == "waiting"
        assert len(await _requests(alice, run_id)) == 1

        # The human-input route takes no `decided_by`: the key says who decides.
        named = await mallory.post(f"/runs/{run_id}/requests/ask", json=forged)
        assert named.status_code == 422
        assert [f["path"] for f in named.json()["error"]["fields"]] == ["decided_by"]
        other = await mallory.post(f"/runs/{run_id}/requests/ask", json={"decision": "approve"})
        assert other.status_code == 404
        assert other.json()["error"]["message"] == f"no run with id {run_id!r}"
        owner = await alice.post(f"/runs/{run_id}/requests/ask", json={"decision": "approve"})
        assert owner.status_code == 403
        assert owner.json()["error"]["message"] == "only carol may decide step ask"
        assert service.backend.view(run_id).step("ask").status == "waiting"

        # Carol, who is not the run's owner, decides through the route.
        answer = await carol.post(f"/runs/{run_id}/requests/ask", json={"decision": "approve"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["decided_by"] == "carol"
        run = await service.backend.wait(run_id, timeout=15)
        assert run.status == "completed"
        assert run.step("ask").outputs["decided_by"] == "carol"


async def test_approvers_see_answer_and_list_what_is_addressed_to_them(
    server_url: str, make_key: MakeKey, service: Service
) -> None:
    async with (
        client_for(server_url, make_key("alice", "write")) as alice,
        client_for(server_url, make_key("carol", "write")) as carol,
        client_for(server_url, make_key("carol", "read")) as carol_reads,
        client_for(server_url, make_key("dave", "write")) as dave,
    ):
        for_carol = await _start(alice, approval(["carol", "bob"]))
        not_for_carol = await _start(alice, approval(["bob"]))
        anyone = await _start(alice, approval([]))
        carols_own = await _start(carol, approval([]))
        for run_id in (for_carol, not_for_carol, anyone):
            await _requests(alice, run_id)
        await _requests(carol, carols_own)

        # Carol's pending approvals: the one naming her, and the one in her own run.
        mine = await carol_reads.get("/requests")
        assert mine.status_code == 200, mine.text
        listed = {(r["run_id"], r["step_id"], r["owner"]) for r in mine.json()["items"]}
        assert listed == {(for_carol, "ask", "alice"), (carols_own, "ask", "carol")}
        assert mine.json()["total"] == 2
        # Alice's: the run naming no approvers (the others name someone else).
        alices = (await alice.get("/requests")).json()["items"]
        assert [r["run_id"] for r in alices] == [anyone]
        assert (await dave.get("/requests")).json() == {
            "items": [],
            "total": 0,
            "limit": 50,
            "offset": 0,
        }

        # Carol sees the request addressed to her, not the run, nor other runs' requests.
        seen = await carol.get(f"/runs/{for_carol}/requests")
        assert seen.status_code == 200
        assert [r["approvers"] for r in seen.json()["items"]] == [["carol", "bob"]]
        assert (await carol.get(f"/runs/{for_carol}")).status_code == 404
        for hidden in (not_for_carol, anyone):
            refused = await carol.get(f"/runs/{hidden}/requests")
            assert refused.status_code == 404
            assert refused.json()["error"]["message"] == f"no run with id {hidden!r}"
            denied = await carol.post(f"/runs/{hidden}/requests/ask", json={"decision": "approve"})
            assert denied.status_code == 404
        assert service.backend.view(not_for_carol).step("ask").status == "waiting"
        assert service.backend.view(anyone).step("ask").status == "waiting"

        # A read key may list but not answer.
        read_only = await carol_reads.post(
            f"/runs/{for_carol}/requests/ask", json={"decision": "approve"}
        )
        assert read_only.status_code == 403

        answer = await carol.post(
            f"/runs/{for_carol}/requests/ask", json={"decision": "reject", "comment": "no"}
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["step_status"] == "failed"
        assert answer.json()["error"] == "rejected by carol: no"
        # A double click: the first answer again; a change of mind is refused.
        again = await carol.post(
            f"/runs/{for_carol}/requests/ask", json={"decision": "reject", "comment": "no"}
        )
        assert (again.status_code, again.json()) == (200, answer.json())
        assert again.headers["idempotent-replayed"] == "true"
        changed = await carol.post(f"/runs/{for_carol}/requests/ask", json={"decision": "approve"})
        assert changed.status_code == 409
        assert changed.json()["error"]["message"] == (
            "step ask was already decided: carol chose 'reject'; a decision cannot be changed"
        )
        assert (await service.backend.wait(for_carol, timeout=15)).status == "failed"
        remaining = {r["run_id"] for r in (await carol.get("/requests")).json()["items"]}
        assert remaining == {carols_own}
        for run_id in (not_for_carol, anyone, carols_own):
            await alice.post(f"/runs/{run_id}/cancel")
            await carol.post(f"/runs/{run_id}/cancel")


async def test_a_double_click_while_the_first_is_in_flight_is_applied_once(
    server_url: str, make_key: MakeKey, service: Service
) -> None:
    async with client_for(server_url, make_key("alice", "write")) as alice:
        run_id = await _start(alice, approval([]))
        await _requests(alice, run_id)
        url = f"/runs/{run_id}/requests/ask"
        first, second = await asyncio.gather(
            alice.post(url, json={"decision": "approve"}),
            alice.post(url, json={"decision": "approve"}),
        )
        assert {first.status_code, second.status_code} == {200}, (first.text, second.text)
        assert first.json() == second.json()
        assert first.json()["delivery"] == "routed"
        replayed = [r.headers.get("idempotent-replayed") for r in (first, second)]
        assert replayed.count("true") == 1
        decided = [e for e in await service.backend.timeline(run_id) if e.kind == "event"]
        assert len(decided) == 1


async def test_idempotency_keys_do_not_collide_across_owners(
    server_url: str, make_key: MakeKey, service: Service
) -> None:
    body = {"pipeline": docs.greeting()}
    async with (
        client_for(server_url, make_key("alice", "write")) as alice,
        client_for(server_url, make_key("alice:inv", "write")) as alice_inv,
    ):
        # Both orders of the two keys that used to be stored alike (`alice:inv:k1`).
        for first, first_key, second, second_key in [
            (alice, "inv:k1", alice_inv, "k1"),
            (alice_inv, "k2", alice, "inv:k2"),
        ]:
            one = await first.post("/runs", json={**body, "idempotency_key": first_key})
            assert one.status_code == 201, one.text
            two = await second.post("/runs", json={**body, "idempotency_key": second_key})
            assert two.status_code == 201, two.text
            assert two.json()["run_id"] != one.json()["run_id"]
            assert two.json()["idempotency_key"] == second_key
            # Each key still finds its own first run.
            again = await first.post("/runs", json={**body, "idempotency_key": first_key})
            assert (again.status_code, again.json()["run_id"]) == (200, one.json()["run_id"])
            assert again.json()["owner"] == one.json()["owner"]
            seen = await second.get(f"/runs/{one.json()['run_id']}")
            assert seen.status_code == 404
        stored = sorted(
            key
            for (key,) in service.store.db.execute(
                "SELECT idempotency_key FROM runs WHERE idempotency_key IS NOT NULL"
            )
        )
        assert stored == ["5:alice:inv:k1", "5:alice:inv:k2", "9:alice:inv:k1", "9:alice:inv:k2"]


def test_keys_stored_before_are_split_by_their_run_s_owner(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    store = Store(path).open()
    db = store.db
    db.execute("INSERT INTO pipelines VALUES ('h', 'p', '1', '{}', 0)")
    rows = [
        ("r1", "alice:inv:k1", "alice"),
        ("r2", "alice:inv:k1x", "alice:inv"),
        ("r3", "cli-key", None),
        ("r4", "k:é:1", "k"),
    ]
    for run_id, key, owner in rows:
        db.execute(
            "INSERT INTO runs (id, pipeline_hash, pipeline_name, status, params, created_at,"
            " idempotency_key, owner) VALUES (?, 'h', 'p', 'completed', '{}', 0, ?, ?)",
            (run_id, key, owner),
        )
    # As a database made before the key's new form: undo what the later migrations added.
    db.execute("DROP INDEX run_events_logs")
    db.execute("ALTER TABLE catalog_pipelines DROP COLUMN shared")
    db.execute("DROP INDEX runs_by_trigger")
    for column in ("trigger", "trigger_id", "trigger_time"):
        db.execute(f"ALTER TABLE runs DROP COLUMN {column}")
    db.execute("PRAGMA user_version=2")
    store.close()

    store = Store(path).open()
    found = dict(store.db.execute("SELECT id, idempotency_key FROM runs").fetchall())
    assert found == {
        "r1": scoped_key("alice", "inv:k1"),
        "r2": scoped_key("alice:inv", "k1x"),
        "r3": "cli-key",
        "r4": scoped_key("k", "é:1"),
    }
    assert store.run_for_key(scoped_key("alice", "inv:k1")) == "r1"
    store.close()
