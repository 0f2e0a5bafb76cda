"""`conveyor requests ...`: list and answer what waiting steps ask a person, on a server.

An `approval` step (or a `wait_for_event` step with a `form`) opens a request while it waits;
these commands use the server's human-input routes (`GET /runs/{id}/requests`,
`POST /runs/{id}/requests/{step}`), so the answer is checked, stored and applied by the
engine that runs the step, exactly as an answer from any other client.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from conveyor.cli.app import app
from conveyor.cli.commands_runs import remote_call
from conveyor.cli.common import JsonOption, configure_logging, fail, print_json, stdout
from conveyor.cli.remote import ApiKeyOption, ServerOption
from conveyor.cli.tables import fit, local_time, table

if TYPE_CHECKING:
    from conveyor.cli.remote import Remote

requests_app = typer.Typer(
    help="List and answer the requests of steps waiting for a person (on a server).",
    no_args_is_help=True,
)
app.add_typer(requests_app, name="requests")

SCANNED_RUNS = 500
"""How many running runs `requests list` without a run id looks into."""


class DecisionChoice(StrEnum):
    """What the person decides."""

    APPROVE = "approve"
    REJECT = "reject"


def _need_server(server: str | None) -> str:
    if server is None:
        raise typer.BadParameter(
            "requests are answered through a Conveyor server: pass --server URL",
            param_hint="'--server'",
        )
    return server


@requests_app.command("list")
def list_command(
    run_id: Annotated[
        str | None,
        typer.Argument(help="Only this run's requests (default: every running run's)."),
    ] = None,
    json_output: JsonOption = False,
    server: ServerOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """List open requests: which run and step asks, what, and who may decide."""
    url = _need_server(server)
    configure_logging()
    found = remote_call(url, api_key, lambda remote: _open(remote, run_id))
    if json_output:
        print_json(found)
        return
    if not found:
        stdout.print("No open requests.")
        return
    shown = table("run", "step", "approvers", "expires", "title")
    for request in found:
        step = request["step_id"]
        if request.get("index") is not None:
            step += f"[{request['index']}]"
        shown.add_row(
            request["run_id"],
            step,
            ", ".join(request.get("approvers") or []) or "anyone",
            local_time(request.get("expires_at")),
            Text(request.get("title") or ""),
        )
    stdout.print(fit(shown, stdout))


async def _open(remote: Remote, run_id: str | None) -> list[dict[str, Any]]:
    if run_id is not None:
        runs = [run_id]
    else:
        page = await remote.get_json("/runs", status="running", limit=SCANNED_RUNS)
        runs = [run["run_id"] for run in page["items"]]
    found: list[dict[str, Any]] = []
    for ident in runs:
        page = await remote.get_json(f"/runs/{ident}/requests", limit=500)
        found += [{"run_id": ident, **request} for request in page["items"]]
    return found


@requests_app.command("answer")
def answer_command(
    run_id: Annotated[str, typer.Argument(help="The run.")],
    step_id: Annotated[str, typer.Argument(metavar="STEP", help="The waiting step.")],
    decision: Annotated[
        DecisionChoice, typer.Option("--decision", "-d", help="approve or reject.")
    ],
    data: Annotated[
        str | None,
        typer.Option(
            "--data", metavar="JSON", help="What the request's form asks for, as a JSON object."
        ),
    ] = None,
    comment: Annotated[str | None, typer.Option("--comment", help="Kept with the answer.")] = None,
    index: Annotated[
        int | None, typer.Option("--index", min=0, help="The item, for a for_each step.")
    ] = None,
    json_output: JsonOption = False,
    server: ServerOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Approve or reject a waiting step's request; prints what the step did with it."""
    url = _need_server(server)
    body: dict[str, Any] = {"decision": decision.value}
    if data is not None:
        try:
            body["data"] = json.loads(data)
        except json.JSONDecodeError as exc:
            raise typer.BadParameter(f"not JSON: {exc.msg}", param_hint="'--data'") from exc
        if not isinstance(body["data"], dict):
            raise typer.BadParameter("must be a JSON object", param_hint="'--data'")
    if comment is not None:
        body["comment"] = comment
    configure_logging()
    path = f"/runs/{run_id}/requests/{step_id}" + (f"/{index}" if index is not None else "")
    receipt = remote_call(url, api_key, lambda remote: remote.send_json("POST", path, body))
    if receipt is None:
        fail("the server answered without a receipt")
    if json_output:
        print_json(receipt)
        return
    stdout.print(
        f"{receipt['decision']} by {receipt['decided_by']}: step {step_id} of run {run_id} "
        f"is {receipt['step_status']}",
        soft_wrap=True,
    )
