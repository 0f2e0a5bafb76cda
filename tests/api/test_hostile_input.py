"""Hostile input against a real `conveyor serve`: each is refused clearly, harms nothing stored,
and never stalls the service (a `/health` sent meanwhile answers within a second).

The limits are in docs/limits.md; these send what once froze or crashed the service.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.acceptance.test_cli_run import conveyor
from tests.api import docs
from tests.api.test_cli import Server

HEALTH_BOUND = 1.0
"""How long `/health` may take while a hostile request is handled (seconds)."""


class Service:
    """A `conveyor serve` with an admin key, and what it held before the hostile input."""

    def __init__(self, server: Server, token: str) -> None:
        self.server = server
        self.client = httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=60
        )

    def stored(self) -> tuple[Any, ...]:
        pipelines = self.client.get("/pipelines").json()
        runs = self.client.get("/runs", params={"limit": 500}).json()
        first = self.client.get(f"/pipelines/{pipelines['items'][0]['id']}").json()
        return pipelines, [(r["run_id"], r["status"]) for r in runs["items"]], first

    def hostile(self, send: Callable[[httpx.Client], httpx.Response]) -> httpx.Response:
        """Send a request while `/health` is asked again and again; the slowest must be fast."""
        answer: list[httpx.Response | BaseException] = []

        def attack() -> None:
            try:
                answer.append(send(self.client))
            except BaseException as exc:  # noqa: BLE001 - handed to the test thread
                answer.append(exc)

        thread = threading.Thread(target=attack)
        slowest = 0.0
        with httpx.Client(base_url=self.server.url, timeout=30) as probe:
            thread.start()
            while thread.is_alive() or slowest == 0.0:
                started = time.monotonic()
                assert probe.get("/health").status_code == 200
                slowest = max(slowest, time.monotonic() - started)
                time.sleep(0.02)
        thread.join()
        assert slowest < HEALTH_BOUND, f"/health took {slowest:.2f} s meanwhile"
        result = answer[0]
        if isinstance(result, BaseException):
            raise result
        return result

    def run_ended(self, run_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            view: dict[str, Any] = self.client.get(f"/runs/{run_id}").json()
            if view["status"] in ("completed", "failed", "cancelled", "timed_out"):
                return view
            time.sleep(0.1)
        raise AssertionError(f"run {run_id} did not end")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("hostile")
    made = conveyor(
        "keys", "create", "--owner", "admin", "--scope", "admin", "--db", str(tmp / "c.db")
    )
    assert made.returncode == 0, made.stderr
    server = Server(tmp)
    service = Service(server, made.stdout.strip())
    created = service.client.post("/pipelines", json={"document": docs.greeting()})
    assert created.status_code == 201, created.text
    started = service.client.post("/runs", json={"pipeline_id": "greet"})
    assert started.status_code == 201, started.text
    service.run_ended(started.json()["run_id"])
    try:
        yield service
    finally:
        service.client.close()
        assert server.stop()


@pytest.fixture
def unharmed(service: Service) -> Iterator[Service]:
    """The service; afterwards, what it stored before is all still there, unchanged."""
    before = service.stored()
    yield service
    after = service.stored()
    assert after[0] == before[0] and after[2] == before[2], "a stored pipeline changed"
    assert set(before[1]) <= set(after[1]), "a stored run changed"


def _error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    return error


def _step(template: str, **step: Any) -> dict[str, Any]:
    return {
        "name": "hostile",
        "steps": [{"id": "a", "action": "log", "params": {"message": template}, **step}],
    }


# ------------------------------------------------------------------ templates


@pytest.mark.parametrize(
    ("template", "limit"),
    [
        ("{{ 'a' * 10**9 }}", "template_max_output_chars"),
        ("{{ 10**(10**7) > 5 }}", "template_max_integer_digits"),
        (
            "{% for i in range(100000) %}{% for j in range(300) %}x{% endfor %}{% endfor %}",
            "template_max_range",
        ),
        (
            "{% for i in range(10000) %}{% for j in range(300) %}{% endfor %}{% endfor %}",
            "template_max_loop_iterations",
        ),
        ("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}", "template_max_call_depth"),
        ("{{ 'a'|center(10**9) }}", "template_max_output_chars"),
    ],
)
def test_a_costly_template_validates_fast_and_fails_its_step_naming_the_limit(
    unharmed: Service, template: str, limit: str
) -> None:
    checked = unharmed.hostile(
        lambda c: c.post("/pipelines/validate", json={"document": _step(template)})
    )
    assert checked.status_code == 200, checked.text
    started = unharmed.hostile(lambda c: c.post("/runs", json={"pipeline": _step(template)}))
    assert started.status_code == 201, started.text
    view = unharmed.run_ended(started.json()["run_id"])
    assert view["status"] == "failed"
    (step,) = view["steps"]
    assert step["status"] == "failed"
    assert limit in step["error"], step["error"]


def test_a_costly_condition_fails_its_step(unharmed: Service) -> None:
    document = _step("hi", condition="{{ 10**(10**7) > 5 }}")
    started = unharmed.hostile(lambda c: c.post("/runs", json={"pipeline": document}))
    view = unharmed.run_ended(started.json()["run_id"])
    assert "condition" in view["steps"][0]["error"]
    assert "template_max_integer_digits" in view["steps"][0]["error"]


def test_a_later_step_that_recurses_leaves_no_step_open(unharmed: Service) -> None:
    document = {
        "name": "later",
        "steps": [
            {"id": "first", "action": "log", "params": {"message": "hi"}},
            {
                "id": "second",
                "action": "log",
                "depends_on": ["first"],
                "params": {"message": "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}"},
            },
            {"id": "third", "action": "log", "depends_on": ["second"], "params": {"message": "x"}},
        ],
    }
    started = unharmed.hostile(lambda c: c.post("/runs", json={"pipeline": document}))
    view = unharmed.run_ended(started.json()["run_id"])
    assert view["status"] == "failed"
    statuses = {s["step_id"]: s["status"] for s in view["steps"]}
    assert statuses == {"first": "completed", "second": "failed", "third": "skipped"}


def test_deeply_nested_parentheses_are_a_4xx_naming_the_field(unharmed: Service) -> None:
    document = _step("{{ " + "(" * 200 + "1" + ")" * 200 + " }}")
    checked = unharmed.hostile(lambda c: c.post("/pipelines/validate", json={"document": document}))
    (problem,) = checked.json()["errors"]
    assert problem["path"] == "steps[0].params.message"
    assert "template_max_nesting" in problem["message"]
    stored = unharmed.hostile(lambda c: c.post("/pipelines", json={"document": document}))
    error = _error(stored, 422)
    assert error["fields"][0]["path"] == "steps[0].params.message"


# ------------------------------------------------------------------ for_each


def test_for_each_past_the_cap_fails_its_step(unharmed: Service) -> None:
    document = {
        "name": "many",
        "parameters": [{"name": "items", "type": "array"}],
        "steps": [
            {
                "id": "each",
                "action": "log",
                "for_each": "{{ params.items }}",
                "params": {"message": "{{ item }}"},
            }
        ],
    }
    started = unharmed.hostile(
        lambda c: c.post(
            "/runs", json={"pipeline": document, "params": {"items": list(range(10_001))}}
        )
    )
    view = unharmed.run_ended(started.json()["run_id"])
    error = view["steps"][0]["error"]
    assert "10,001 items" in error and "max_for_each_items (10,000)" in error


def test_for_each_items_are_paged(service: Service) -> None:
    document = {
        "name": "paged",
        "steps": [
            {
                "id": "each",
                "action": "log",
                "for_each": "{{ range(150) | list }}",
                "params": {"message": "{{ item }}"},
            }
        ],
    }
    started = service.client.post("/runs", json={"pipeline": document})
    view = service.run_ended(started.json()["run_id"])
    assert view["status"] == "completed"
    step = view["steps"][0]
    assert (len(step["items"]), step["items_total"]) == (100, 150)
    page = service.client.get(
        f"/runs/{view['run_id']}/steps/each/items", params={"offset": 100, "limit": 100}
    ).json()
    assert page["total"] == 150
    assert [item["index"] for item in page["items"]] == list(range(100, 150))
    missing = service.client.get(f"/runs/{view['run_id']}/steps/nope/items")
    assert _error(missing, 404)["type"] == "not_found"


# ------------------------------------------------------------------ input that JSON cannot store


def test_a_lone_surrogate_in_run_params_is_a_422(unharmed: Service) -> None:
    body = '{"pipeline_id": "greet", "params": {"who": "\\udc80"}}'
    response = unharmed.hostile(
        lambda c: c.post("/runs", content=body, headers={"content-type": "application/json"})
    )
    error = _error(response, 422)
    assert error["fields"] == [
        {"path": "params.who", "message": "is not valid Unicode text (a lone surrogate)"}
    ]


def test_a_lone_surrogate_in_an_event_is_a_422(unharmed: Service) -> None:
    body = '{"workflow_id": "w-1", "data": {"note": "\\udc80"}}'
    response = unharmed.hostile(
        lambda c: c.post("/events", content=body, headers={"content-type": "application/json"})
    )
    error = _error(response, 422)
    assert error["fields"][0]["path"] == "data.note"
    assert unharmed.client.get("/events").json()["total"] == 0


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_in_params_are_refused(unharmed: Service, constant: str) -> None:
    body = '{"pipeline_id": "greet", "params": {"who": ' + constant + "}}"
    response = unharmed.hostile(
        lambda c: c.post("/runs", content=body, headers={"content-type": "application/json"})
    )
    assert f"{constant} is not a JSON number" in _error(response, 400)["message"]


def test_an_infinite_retry_interval_is_refused(unharmed: Service) -> None:
    text = (
        "name: p\nsteps:\n- id: a\n  action: log\n  params: {message: hi}\n"
        "  retry: {initial_interval_seconds: .inf}\n"
    )
    response = unharmed.hostile(lambda c: c.post("/pipelines", json={"document": text}))
    fields = _error(response, 422)["fields"]
    assert fields == [
        {
            "path": "steps[0].retry.initial_interval_seconds",
            "message": "must be a finite number, got inf",
        }
    ]


# ------------------------------------------------------------------ documents


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_deeply_nested_yaml_is_refused(unharmed: Service, depth: int) -> None:
    text = "name: p\nx: " + "[" * depth + "]" * depth
    checked = unharmed.hostile(lambda c: c.post("/pipelines/validate", json={"document": text}))
    assert "nested more than 100 levels deep" in checked.json()["errors"][0]["message"]
    stored = unharmed.hostile(lambda c: c.post("/pipelines", json={"document": text}))
    assert "nested more than 100 levels deep" in _error(stored, 422)["message"]


def test_a_5000_digit_integer_is_refused(unharmed: Service) -> None:
    text = "name: p\nx: " + "9" * 5000
    response = unharmed.hostile(lambda c: c.post("/pipelines", json={"document": text}))
    assert "an integer of 5,000 digits; at most 4,300" in _error(response, 422)["message"]


def test_a_10000_step_chain_validates(unharmed: Service) -> None:
    steps = [
        {
            "id": f"s{i}",
            "action": "log",
            # A template on every tenth step: the whole chain must fit in a 1 MiB body.
            "params": {"message": f"{{{{ steps.s{i - 1}.outputs }}}}" if i % 10 == 1 else "x"},
            **({"depends_on": [f"s{i - 1}"]} if i else {}),
        }
        for i in range(10_000)
    ]
    document = {"name": "chain", "steps": steps}
    started = time.monotonic()
    checked = unharmed.hostile(lambda c: c.post("/pipelines/validate", json={"document": document}))
    assert checked.json() == {"valid": True, "errors": [], "warnings": []}
    assert time.monotonic() - started < 60  # Generous: it once took minutes; see bench for figures.


# ------------------------------------------------------------------ the database


def test_a_write_lock_held_by_another_process_is_a_503(unharmed: Service) -> None:
    holder = sqlite3.connect(unharmed.server.db, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        response = unharmed.hostile(
            lambda c: c.post("/pipelines", json={"document": docs.greeting("other")})
        )
        assert _error(response, 503)["type"] == "unavailable"
        assert response.headers["Retry-After"] == "1"
        assert unharmed.client.get("/health").status_code == 200
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    stored = unharmed.client.post("/pipelines", json={"document": docs.greeting("other")})
    assert stored.status_code == 201
    assert unharmed.client.delete(f"/pipelines/{stored.json()['id']}").status_code == 204


def test_serve_on_a_read_only_database_says_so_in_one_line(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    assert (
        conveyor("keys", "create", "--owner", "a", "--scope", "read", "--db", str(db)).returncode
        == 0
    )
    if subprocess.run(["chattr", "+i", str(db)], capture_output=True).returncode != 0:
        pytest.skip("cannot make a file read-only here (chattr)")
    try:
        done = conveyor("serve", "--port", "1", "--db", str(db))
    finally:
        subprocess.run(["chattr", "-i", str(db)], check=True)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    # The first line says which database the command uses; the error is the one line after.
    said = done.stderr.split("\nerror: ", 1)
    assert said[0].startswith("database: ")
    message = " ".join(said[1].split())
    assert message == f"cannot use the database {db}: attempt to write a readonly database"


def test_cli_params_refuse_non_finite_json(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(
        "name: p\nparameters: [{name: x, type: object}]\n"
        "steps:\n- id: a\n  action: log\n  params: {message: '{{ params.x }}'}\n"
    )
    (tmp_path / "x.json").write_text(json.dumps({"a": [1, float("nan")]}))
    done = conveyor(
        "run",
        str(tmp_path / "p.yaml"),
        "-p",
        f"x=@{tmp_path / 'x.json'}",
        "--db",
        str(tmp_path / "c.db"),
    )
    assert done.returncode == 2
    assert "NaN is not a JSON number" in " ".join(done.stderr.split())
