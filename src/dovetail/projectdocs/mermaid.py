"""The data-flow diagram of a flow as a Mermaid ``flowchart LR``.

Source, then each step in order, then the sinks; a ``route`` step's branches are labelled
with their conditions; every step and sink has a dashed edge to the dead-letter queue (or to
"flow stops" when ``dead_letter: false``). Labels are quoted and Mermaid-escaped, so any
text from a flow file is shown literally.
"""

from __future__ import annotations

from dovetail.projectdocs.model import FlowDoc, StepDoc

MAX_LABEL = 80
_ESCAPES = (("#", "#35;"), ('"', "#quot;"), ("<", "#lt;"), (">", "#gt;"))


def label(text: str) -> str:
    """``text`` as a quoted Mermaid label: one line, shortened, entity-escaped."""
    flat = " ".join(text.split())
    if len(flat) > MAX_LABEL:
        flat = flat[: MAX_LABEL - 1] + "…"
    for raw, escaped in _ESCAPES:
        flat = flat.replace(raw, escaped)
    return f'"{flat}"'


def step_node(step: StepDoc) -> str:
    """The node id of a step."""
    return f"step{step.index}"


def sink_node(index: int) -> str:
    """The node id of the ``index``-th sink."""
    return f"sink{index}"


def flowchart(flow: FlowDoc) -> str:
    """The Mermaid source of the flow's diagram (no fences)."""
    lines = ["flowchart LR"]
    lines.append(f"  source[{label(f'{flow.source.component}: {flow.source.target}')}]")
    for step in flow.steps:
        text = f"{step.index + 1}. {step.component}: {step.summary}"
        shape = ("{", "}") if step.component == "route" else ("[", "]")
        lines.append(f"  {step_node(step)}{shape[0]}{label(text)}{shape[1]}")
    sink_ids: dict[str, str] = {}
    for index, sink in enumerate(flow.sinks):
        sink_ids[sink.label] = sink_node(index)
        text = f"{sink.label}: {sink.component} {sink.target}"
        lines.append(f"  {sink_node(index)}[({label(text)})]")
    stop = "dead-letter queue" if flow.delivery.dead_letter else "flow stops"
    lines.append(f"  dlq[({label(stop)})]")

    previous = "source"
    for step in flow.steps:
        lines.append(f"  {previous} --> {step_node(step)}")
        previous = step_node(step)
    route = next((s for s in reversed(flow.steps) if s.component == "route"), None)
    if route is None:
        for node in sink_ids.values():
            lines.append(f"  {previous} --> {node}")
    else:
        for branch in route.routes:
            for target in branch.to:
                if target in sink_ids:
                    lines.append(f"  {previous} -->|{label(branch.when)}| {sink_ids[target]}")
        if isinstance(route.otherwise, tuple):
            for target in route.otherwise:
                if target in sink_ids:
                    lines.append(f"  {previous} -->|{label('otherwise')}| {sink_ids[target]}")
    failing = ["source", *(step_node(s) for s in flow.steps), *sink_ids.values()]
    for node in failing:
        lines.append(f"  {node} -.-> dlq")
    lines.append("  classDef dlq stroke-dasharray: 4 4")
    lines.append("  class dlq dlq")
    return "\n".join(lines)
