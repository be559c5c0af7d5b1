"""Code generation for mapping sheets: one straight-line Python function per sheet.

``generate_mapping`` turns the compiled rows of a sheet (``FieldPlan``) into a function that,
for an object payload, reads each source path with direct ``dict.get`` calls, applies each
transform step as a direct call of the function bound at compile time (text transforms
inlined as expressions, see ``transforms.FAST_PATHS``), checks the required fields and builds
the output with one dict display. Payloads that are not objects take a twin function with the
same steps whose paths are read with JSONata semantics (through arrays, on any value).

The generated code contains only names it defines, ``repr`` of path keys and target keys;
values and functions are passed in its namespace, never as source text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from dovetail.errors import MappingFailed
from dovetail.mapping.transforms import FAST_PATHS, Transform, TransformFailed

Mapping = Callable[[Any], Any]
"""A compiled sheet: input payload in, new output object out; raises ``MappingFailed``."""


@dataclass(frozen=True, slots=True)
class Read:
    """Where one value comes from: a dotted ``path`` (with ``evaluate`` its JSONata reading,
    for payloads that are not plain objects), a JSONata expression (``evaluate`` alone), or a
    ``constant`` (neither)."""

    path: tuple[str, ...] | None = None
    evaluate: Callable[[Any], Any] | None = None
    constant: Any = None


@dataclass(frozen=True, slots=True)
class Step:
    """One transform step: its vocabulary ``name`` and the function bound for its argument."""

    name: str
    apply: Transform


@dataclass(frozen=True, slots=True)
class FieldPlan:
    """One sheet row, ready for code: a folded ``constant`` when ``reads`` is empty.

    Otherwise ``each`` applies to every read value; with ``join`` (``concat``) the parts are
    joined and ``after`` applies to the joined value.
    """

    target: str
    required: bool
    reads: tuple[Read, ...] = ()
    each: tuple[Step, ...] = ()
    join: Transform | None = None
    after: tuple[Step, ...] = ()
    constant: Any = None


def generate_mapping(
    name: str,
    fields: Sequence[FieldPlan],
    failed: Callable[[int, Exception], MappingFailed],
    required_empty: Callable[[int], MappingFailed],
) -> Mapping:
    """The sheet's function. ``failed(i, exc)`` and ``required_empty(i)`` build the error
    raised for field ``i`` (a transform or expression failure; a required value missing)."""
    namespace: dict[str, Any] = {
        "TransformFailed": TransformFailed,
        "MappingFailed": MappingFailed,
        "_containers": (list, dict),
        "_failed": failed,
        "_required": required_empty,
    }
    leaves: dict[str, str] = {}
    reads_fast: list[str] = []
    reads_general: list[str] = []
    checks: list[str] = []
    for i, item in enumerate(fields):
        if not item.reads:
            namespace[f"c{i}"] = item.constant
            leaves[item.target] = f"c{i}"
            continue
        value = f"v{i}"
        leaves[item.target] = value
        for lines, fast in ((reads_fast, True), (reads_general, False)):
            lines.append(f"i = {i}")
            lines += _field_code(i, item, value, fast, namespace)
        if item.required:
            empty = f"{value} is None or {value} == '' or"
            empty += f" (isinstance({value}, _containers) and not {value})"
            checks += [f"    if {empty}:", f"        raise _required({i})"]
    result = f"    return {_render(_tree(leaves))}"
    source = "\n".join(
        [
            *_function("general", "", reads_general, checks, result),
            *_function(
                "mapping",
                "    if type(payload) is not dict:\n        return general(payload)\n"
                "    get = payload.get",
                reads_fast,
                checks,
                result,
            ),
        ]
    )
    code = compile(source + "\n", f"<mapping sheet {name}>", "exec")
    exec(code, namespace)
    mapping: Mapping = namespace["mapping"]
    return mapping


def _function(
    name: str, prologue: str, reads: list[str], checks: list[str], result: str
) -> list[str]:
    lines = [f"def {name}(payload):"]
    if prologue:
        lines.append(prologue)
    lines += ["    i = -1", "    try:"]
    lines += [f"        {line}" for line in reads]
    lines += [
        "        pass",
        "    except (TransformFailed, MappingFailed) as exc:",
        "        raise _failed(i, exc) from None",
        *checks,
        result,
    ]
    return lines


def _field_code(
    i: int, item: FieldPlan, value: str, fast: bool, namespace: dict[str, Any]
) -> list[str]:
    """Statements that leave field ``i``'s final value in the local ``value``."""
    each = _bind_steps(f"f{i}_", item.each, namespace)
    after = _bind_steps(f"g{i}_", item.after, namespace)
    if item.join is None:
        lines = _read_code(f"{i}", item.reads[0], value, fast, namespace)
        return lines + _steps_code(each, value)
    lines = []
    parts = []
    for p, read in enumerate(item.reads):
        part = f"v{i}_{p}"
        lines += _read_code(f"{i}_{p}", read, part, fast, namespace)
        lines += _steps_code(each, part)
        parts.append(part)
    namespace[f"j{i}"] = item.join
    lines.append(f"{value} = j{i}(({', '.join(parts)},))")
    return lines + _steps_code(after, value)


def _bind_steps(
    prefix: str, steps: Sequence[Step], namespace: dict[str, Any]
) -> list[tuple[str, str]]:
    bound = []
    for j, step in enumerate(steps):
        namespace[f"{prefix}{j}"] = step.apply
        bound.append((step.name, f"{prefix}{j}"))
    return bound


def _steps_code(steps: list[tuple[str, str]], value: str) -> list[str]:
    template = "{f}({v})"
    return [f"{value} = {FAST_PATHS.get(name, template).format(v=value, f=f)}" for name, f in steps]


def _read_code(
    suffix: str, read: Read, target: str, fast: bool, namespace: dict[str, Any]
) -> list[str]:
    """Statements that read one source into the local ``target``."""
    if read.path is None and read.evaluate is None:
        namespace[f"k{suffix}"] = read.constant
        return [f"{target} = k{suffix}"]
    namespace[f"e{suffix}"] = read.evaluate
    if read.path is None:
        return [f"{target} = e{suffix}(payload)"]
    if not fast:  # payload is not an object: JSONata path semantics
        if len(read.path) == 1:
            return [f"{target} = e{suffix}(payload)"]
        return [f"{target} = None if payload is None else e{suffix}(payload)"]
    first, *rest = read.path
    lines = [f"{target} = get({first!r})"]
    depth = ""
    for key in rest:  # into nested objects; anything else but null is read with JSONata
        lines += [
            f"{depth}if type({target}) is dict:",
            f"{depth}    {target} = {target}.get({key!r})",
        ]
        depth += "    "
    for level in range(len(rest), 0, -1):
        indent = "    " * (level - 1)
        lines += [
            f"{indent}elif {target} is not None:",
            f"{indent}    {target} = e{suffix}(payload)",
        ]
    return lines


def _tree(leaves: dict[str, str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for target, leaf in leaves.items():
        *parents, last = target.split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = leaf
    return tree


def _render(node: dict[str, Any]) -> str:
    items = (f"{key!r}: {_render(v) if isinstance(v, dict) else v}" for key, v in node.items())
    return "{" + ", ".join(items) + "}"
