"""Flow supervision: a crashed flow is restarted with backoff, or stays stopped, alone."""

from __future__ import annotations

import socket
from pathlib import Path

import anyio

from dovetail.config.loader import load_flow
from dovetail.runtime.summary import RunSummary
from dovetail.runtime.supervisor import FlowSupervisor, RestartBackoff
from dovetail.store.sqlite import SqliteStore

OPENAPI = """\
openapi: 3.1.0
info: {title: Orders, version: 1.0.0}
paths:
  /orders/{order_id}:
    get:
      operationId: getOrder
      parameters:
        - {name: order_id, in: path, required: true, schema: {type: integer}}
      responses:
        "200": {description: the order}
"""

FLOW = """\
flow: orders-api
source:
  api: {{openapi: schemas/orders.yaml, operation: getOrder, port: {port}}}
sink:
  file: {{path: out/orders.jsonl, format: jsonl}}
"""


def test_the_wait_doubles_up_to_its_maximum_and_resets_after_a_healthy_run() -> None:
    backoff = RestartBackoff(initial=1.0, maximum=8.0, healthy_after=60.0)
    waits: list[float] = []
    wait = None
    for _ in range(6):
        wait = backoff.next_wait(wait, ran_for=0.1)
        waits.append(wait)
    assert waits == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert backoff.next_wait(8.0, ran_for=61.0) == 1.0


def test_a_flow_failing_at_every_start_is_restarted_until_stopped(project: Path) -> None:
    (project / "schemas").mkdir()
    (project / "schemas" / "orders.yaml").write_text(OPENAPI)
    with socket.socket() as squatter:  # the flow's port is taken: its source fails at start
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        (project / "flows" / "orders.yaml").write_text(FLOW.format(port=squatter.getsockname()[1]))
        flow = load_flow(project / "flows" / "orders.yaml")

        async def main() -> RunSummary:
            store = SqliteStore(project / "s.db")
            await store.open()
            backoff = RestartBackoff(initial=0.05, maximum=0.1)
            supervisor = FlowSupervisor(flow, store=store, once=False, backoff=backoff)
            try:
                async with anyio.create_task_group() as group:
                    group.start_soon(_stop_after, supervisor, 1.5)
                    return await supervisor.run()
            finally:
                await store.close()

        summary = anyio.run(main)
    assert summary.error is not None and "in use" in summary.error
    assert summary.restarts >= 2


async def _stop_after(supervisor: FlowSupervisor, seconds: float) -> None:
    await anyio.sleep(seconds)
    supervisor.stop()
