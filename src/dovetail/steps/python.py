"""``python``: call a function from the user's project on each message (the escape hatch)."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationInfo, field_validator

from dovetail.config.fields import project_dir_of
from dovetail.core.component import BuildContext, StepOutcome
from dovetail.core.envelope import Envelope
from dovetail.core.steps import DROP, mark_failed
from dovetail.errors import ConfigError, MessageError, Problem
from dovetail.plugins.spec import ComponentConfig, ComponentSpec
from dovetail.safety.paths import is_inside

_REFERENCE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")
MAX_REASON = 300


class PythonConfig(ComponentConfig):
    function: str
    """``package.module:function`` of a module inside the project directory."""

    @field_validator("function")
    @classmethod
    def _importable(cls, value: str, info: ValidationInfo) -> str:
        if not _REFERENCE.match(value):
            raise ValueError(f"function must look like package.module:function, not {value!r}")
        root = project_dir_of(info)
        if root is not None:
            try:
                load_function(root, value)
            except ConfigError as exc:
                raise ValueError(exc.problems[0].message) from None
        return value


@dataclass(frozen=True, slots=True)
class UserFunction:
    """A loaded project function and how to call it."""

    func: Callable[..., Any]
    wants_envelope: bool


_IMPORTED_FOR: dict[str, str] = {}
"""Top-level module name -> the project directory this loader imported it from."""


def _forget_other_project(top: str, root: str) -> None:
    """Drop ``top`` (and its submodules) from ``sys.modules`` when this loader imported it for
    another project, so two projects loaded in one process (the Python API, test suites) each
    get their own ``hooks``; modules the loader did not import are never touched."""
    owner = _IMPORTED_FOR.get(top)
    if owner is None or owner == root:
        return
    for name in [m for m in sys.modules if m == top or m.startswith(f"{top}.")]:
        del sys.modules[name]
    del _IMPORTED_FOR[top]
    importlib.invalidate_caches()


def load_function(project_dir: Path, reference: str) -> UserFunction:
    """Import ``module:function`` from the project; refuse modules from anywhere else.

    The project directory is put first on ``sys.path`` while importing, and both the
    module's spec and its ``__file__`` must lie inside it. A module of the same name that this
    loader imported earlier for another project is replaced. Raises ``ConfigError``.
    """
    module_name, _, attribute = reference.partition(":")
    root = str(Path(project_dir).resolve())

    def refuse(message: str) -> ConfigError:
        return ConfigError([Problem(reference, 1, 1, message)])

    sys.path.insert(0, root)
    try:
        top = module_name.split(".", 1)[0]
        _forget_other_project(top, root)
        try:
            spec = importlib.util.find_spec(top)  # locates without running any code
        except (ImportError, ValueError) as exc:
            raise refuse(f"cannot import {module_name}: {exc}") from None
        if spec is None:
            raise refuse(f"no module {top!r} in the project directory")
        if spec.origin is not None and spec.has_location:
            _check_inside(top, spec.origin, root, refuse)
        else:
            locations = list(spec.submodule_search_locations or [])
            _check_inside(top, locations[0] if locations else None, root, refuse)
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # the user's module failed at import: report, don't crash
            raise refuse(f"importing {module_name} failed: {type(exc).__name__}: {exc}") from None
    finally:
        if root in sys.path:
            sys.path.remove(root)
    _check_inside(module_name, getattr(module, "__file__", None), root, refuse)
    _IMPORTED_FOR[top] = root
    func = getattr(module, attribute, None)
    if func is None or not callable(func):
        raise refuse(f"module {module_name} has no function {attribute!r}")
    return UserFunction(func=func, wants_envelope=_wants_envelope(func, refuse))


def _check_inside(
    module_name: str, file: str | None, root: str, refuse: Callable[[str], ConfigError]
) -> None:
    if file is None or not is_inside(Path(file), Path(root)):
        where = file or "built in"
        raise refuse(
            f"module {module_name} resolves to {where}, outside the project directory;"
            " only modules of the project can be used (rename the module if it clashes)"
        )


def _wants_envelope(func: Callable[..., Any], refuse: Callable[[str], ConfigError]) -> bool:
    try:
        parameters = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = [
        p
        for p in parameters
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    varargs = any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters)
    if not positional and not varargs:
        raise refuse("the function must take the payload as its first parameter")
    return len(positional) >= 2 or varargs


class PythonStep:
    """Calls the user's function with the payload (and the ``Envelope`` when it takes two
    parameters); ``async def`` functions are awaited.

    The return value is the new payload; ``None`` filters the message out; a list makes
    one message per element (split semantics: the source message is acked when all have
    settled; an empty list filters it out). An exception fails the message with the
    reason ``python: <ExceptionClass> in <module:function>`` and dead-letters it, its message
    kept as the failure's detail (shown masked by ``dovetail dlq show``): messages often quote
    the payload. A ``PermanentError``/``TransientError`` raised on purpose keeps its reason
    (``python: <reason>``, at most 300 characters). Step failures are not retried; replay
    re-drives them once the cause is fixed.
    """

    name = "python"

    def __init__(self, config: PythonConfig, context: BuildContext) -> None:
        self._reference = config.function
        self._project_dir = context.project_dir
        self._function: UserFunction | None = None

    async def open(self) -> None:
        self._load()

    async def close(self) -> None:
        self._function = None

    def _load(self) -> UserFunction:
        if self._function is None:
            self._function = load_function(self._project_dir, self._reference)
        return self._function

    async def process(self, batch: Sequence[Envelope]) -> StepOutcome:
        user = self._function or self._load()
        outcome = StepOutcome()
        for envelope in batch:
            try:
                if user.wants_envelope:
                    result = user.func(envelope.payload, envelope)
                else:
                    result = user.func(envelope.payload)
                if type(result) is not dict and inspect.isawaitable(result):
                    result = await result
            except MessageError as exc:  # raised on purpose: its reason is the user's
                mark_failed(envelope, self.name, exc)
                if envelope.failure is not None and len(envelope.failure.reason) > MAX_REASON:
                    envelope.failure.reason = envelope.failure.reason[: MAX_REASON - 1] + "…"
                outcome.failed.append(envelope)
                continue
            except Exception as exc:  # user code: any failure is this message's failure
                mark_failed(envelope, self.name, exc)
                if envelope.failure is not None:
                    envelope.failure.reason = f"python: {type(exc).__name__} in {self._reference}"[
                        :MAX_REASON
                    ]
                outcome.failed.append(envelope)
                continue
            if result is None or result is DROP:
                outcome.dropped.append(envelope)
            elif isinstance(result, list):
                if not result:
                    outcome.dropped.append(envelope)
                    continue
                outcome.passed.extend(envelope.derive(item) for item in result)
                await envelope.settlement.settle()
            else:
                envelope.payload = result
                outcome.passed.append(envelope)
        return outcome


SPEC = ComponentSpec(
    kind="step",
    name="python",
    config=PythonConfig,
    factory=PythonStep,
    summary="Call a Python function from your project on each message (the escape hatch).",
    description=(
        "`function` is `package.module:function`, imported from the project directory;"
        " modules outside the project (installed packages, the standard library) are refused,"
        " and `dovetail lint` checks that the module imports and the function exists.\n\n"
        "The function receives the payload, plus the message envelope (ids, headers,"
        " attempt) if it declares a second parameter, and returns the new payload. Return"
        " `None` to filter the message out, or a list to emit one message per element (to"
        " emit a single array payload, return it inside a list: `[[...]]`). `async def`"
        " functions are awaited; keep blocking work out of plain functions. An exception"
        " dead-letters the message with the reason `python: <ExceptionClass> in"
        " <module:function>`; the exception's message is kept as the dead letter's detail,"
        " shown masked by `dovetail dlq show` only. A `PermanentError` or `TransientError`"
        " raised on purpose keeps its own reason (write it without payload values). Step"
        " failures are not retried in place: fix the cause and `dovetail replay` the dead"
        " letters."
    ),
    examples=[
        "python: hooks.orders:enrich",
        "python: {function: hooks.orders:explode_bundles}",
    ],
    shorthand="function",
)
