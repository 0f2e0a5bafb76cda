"""A cancelled step reports only what it produced."""

from __future__ import annotations

import asyncio

import httpx

from tests.api import docs


async def test_a_cancelled_delay_reports_no_outputs(http: httpx.AsyncClient) -> None:
    response = await http.post("/runs", json={"pipeline": docs.sleeping(300)})
    assert response.status_code == 201, response.text
    run_id = response.json()["run_id"]
    async with asyncio.timeout(30):
        while True:
            step = (await http.get(f"/runs/{run_id}")).json()["steps"][0]
            if step["status"] == "waiting":
                break
            await asyncio.sleep(0.02)

    cancelled = await http.post(f"/runs/{run_id}/cancel")

    assert cancelled.status_code == 200, cancelled.text
    step = (await http.get(f"/runs/{run_id}")).json()["steps"][0]
    assert step["status"] == "cancelled"
    assert step["outputs"] is None
