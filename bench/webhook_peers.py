"""The baselines of the webhook benchmark: the same work without Dovetail.

- ``python bench/webhook_peers.py --port P --out FILE``: a plain Starlette app under uvicorn
  (uvloop and httptools where installed, as uvicorn picks them) that parses the order with
  orjson, validates it with jsonschema-rs against ``ORDER_SCHEMA``, maps it with the
  hand-written ``map_order`` and appends it to a JSON Lines file, then answers 202 (400 when
  invalid). Nothing is made durable before answering.
- ``node_red_command(...)``: Node-RED (installed from the npm registry into ``bench/.node-red``)
  with a flow of ``http in`` -> ``function`` (the same checks and mapping in JavaScript) ->
  ``file`` (append) -> ``http response`` 202.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
NODE_RED_DIR = ROOT / "bench" / ".node-red"
NODE_RED_VERSION = "4.1.8"
"""The last release line that runs on Node.js 18 and 20 (5.x needs Node.js 22.9)."""
PATH = "/hooks/orders"

_NODE_RED_FUNCTION = r"""
const o = msg.payload;
const bad = (m) => { msg.statusCode = 400; msg.payload = {error: m}; return [null, msg]; };
if (typeof o !== "object" || o === null) return bad("not an object");
for (const k of ["order_id", "created_at", "customer_email", "first_name", "last_name",
                 "country", "status", "items", "total"]) {
  if (typeof o[k] !== "string") return bad("missing " + k);
}
if (!/^[0-9]{1,15}$/.test(o.order_id)) return bad("order_id");
if (!/^\s*[^@\s]+@[^@\s]+\.[^@\s]+\s*$/.test(o.customer_email)) return bad("customer_email");
const status = {N: "new", P: "paid", S: "shipped", C: "cancelled", R: "refunded"}[o.status];
if (status === undefined) return bad("status");
const created = new Date(o.created_at);
msg.payload = JSON.stringify({
  order_id: parseInt(o.order_id, 10), order_date: o.created_at.slice(0, 10),
  created_at: created.toISOString(), customer_email: o.customer_email.trim().toLowerCase(),
  customer_name: [o.first_name, o.last_name].filter(Boolean).join(" "),
  country: o.country.toUpperCase(), city: (o.city || "").trim(),
  postal_code: (o.postal_code || "").trim(), status: status, item_count: parseInt(o.items, 10),
  total: Number(o.total).toFixed(2), currency: (o.currency || "EUR").toUpperCase(),
  payment_method: (o.payment || "").toLowerCase(), channel: o.channel || "web",
  coupon_code: (o.coupon || "").trim().toUpperCase(),
});
return [msg, null];
"""


def node_red_flow(out: Path) -> list[dict[str, Any]]:
    """The Node-RED flow (flows.json content) doing the benchmark's work."""
    tab = {"id": "n-tab", "type": "tab", "label": "bench"}
    nodes: list[dict[str, Any]] = [
        {"id": "n-in", "type": "http in", "z": "n-tab", "url": PATH, "method": "post",
         "wires": [["n-map"]]},
        {"id": "n-map", "type": "function", "z": "n-tab", "func": _NODE_RED_FUNCTION, "outputs": 2,
         "wires": [["n-file"], ["n-400"]]},
        {"id": "n-file", "type": "file", "z": "n-tab", "filename": str(out), "filenameType": "str",
         "appendNewline": True, "createDir": True, "overwriteFile": "false",
         "encoding": "none", "wires": [["n-202"]]},
        {"id": "n-202", "type": "http response", "z": "n-tab", "statusCode": "202",
         "headers": {}, "wires": []},
        {"id": "n-400", "type": "http response", "z": "n-tab", "statusCode": "400",
         "headers": {}, "wires": []},
    ]  # fmt: skip
    return [tab, *nodes]


def node_red_install() -> str | None:
    """Install Node-RED into ``bench/.node-red`` unless it is there; the reason it cannot be
    run (``None`` when it can)."""
    red = NODE_RED_DIR / "node_modules" / "node-red" / "red.js"
    package = red.with_name("package.json")
    if red.exists() and json.loads(package.read_text())["version"] == NODE_RED_VERSION:
        return None
    if shutil.which("npm") is None or shutil.which("node") is None:
        return "npm/node not installed"
    NODE_RED_DIR.mkdir(parents=True, exist_ok=True)
    command = ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", "--prefix"]
    command += [str(NODE_RED_DIR), f"node-red@{NODE_RED_VERSION}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0 or not red.exists():
        return f"npm install node-red failed: {done.stderr.strip()[-200:]}"
    return None


def node_red_command(work: Path, port: int) -> list[str]:
    """The command line that serves the flow on ``port``, its state under ``work``."""
    user_dir = work / "node-red"
    user_dir.mkdir(parents=True, exist_ok=True)
    flows = user_dir / "flows.json"
    flows.write_text(json.dumps(node_red_flow(work / "node-red-out.jsonl")), encoding="utf-8")
    red = NODE_RED_DIR / "node_modules" / "node-red" / "red.js"
    return ["node", str(red), "--userDir", str(user_dir), "--port", str(port), str(flows)]


def serve_starlette(port: int, out: Path) -> None:
    """Serve the plain Starlette baseline on 127.0.0.1:``port`` until killed."""
    import jsonschema_rs
    import orjson
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    sys.path.insert(0, str(ROOT))
    from bench.baseline import map_order
    from bench.batch_data import ORDER_SCHEMA

    validator = jsonschema_rs.validator_for(ORDER_SCHEMA)
    sink = out.open("ab")

    async def receive(request: Request) -> Response:
        try:
            order = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return Response(b'{"error": "not JSON"}', 400, media_type="application/json")
        if not validator.is_valid(order):
            return Response(b'{"error": "invalid"}', 400, media_type="application/json")
        sink.write(orjson.dumps(map_order(order), default=str) + b"\n")
        sink.flush()
        return Response(b'{"status": "accepted"}', 202, media_type="application/json")

    app = Starlette(routes=[Route(PATH, receive, methods=["POST"])])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    arguments = parser.parse_args()
    serve_starlette(arguments.port, arguments.out)
