"""Code blocks of the Markdown docs, and the commands of their shell blocks.

A block's info string is its language, then optional marks:

- ```` ```yaml fragment ````: a piece of a file (options of one component, a non-Dovetail
  file), shown for reading; it is not checked on its own.
- ```` ```console needs: <what> ````: commands that cannot run offline in a fresh project
  (a partner API, a database server, state made by an earlier block); the reason is kept.
- ```` ```console exit: <code> ````: commands shown failing on purpose (a configuration error,
  exit 2); each must end with that code.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHELLS = frozenset({"console", "shell", "sh", "bash"})
_FENCE = re.compile(r"^(?P<fence>```+|~~~+)\s*(?P<info>[^`]*)$")
_PLACEHOLDER = re.compile(r"<([a-z][a-z0-9-]*)>")
_NEEDS = re.compile(r"\bneeds:\s*(?P<reason>.*)$")
_EXIT = re.compile(r"\bexit:\s*(?P<code>\d+)")


@dataclass(frozen=True)
class CodeBlock:
    """One fenced block: where it starts (the fence line), its language, marks and text."""

    path: Path
    line: int
    lang: str
    info: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def fragment(self) -> bool:
        return "fragment" in self.info.split()[1:]

    @property
    def exit_code(self) -> int | None:
        """The exit code the block's commands are shown ending with, when it says so."""
        found = _EXIT.search(self.info)
        return int(found.group("code")) if found else None

    @property
    def needs(self) -> str | None:
        """Why the block's commands cannot run offline, when it says so."""
        found = _NEEDS.search(self.info)
        return found.group("reason").strip() or "unspecified" if found else None


def doc_files() -> list[Path]:
    """README.md and every Markdown file under docs/."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def code_blocks(path: Path) -> list[CodeBlock]:
    """Every fenced code block of ``path``, in order."""
    blocks: list[CodeBlock] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        opened = _FENCE.match(lines[index])
        if opened is None:
            index += 1
            continue
        fence, info = opened.group("fence"), opened.group("info").strip()
        end = index + 1
        while end < len(lines) and not lines[end].startswith(fence):
            end += 1
        lang = info.split()[0] if info else ""
        text = "\n".join(lines[index + 1 : end]) + "\n"
        blocks.append(CodeBlock(path, index + 1, lang, info, text))
        index = end + 1
    return blocks


def command_lines(block: CodeBlock) -> list[str]:
    """The commands of a shell block: ``$ `` lines in ``console`` (with ``\\`` continuations),
    every non-comment line elsewhere."""
    commands: list[str] = []
    pending = ""
    prompted = block.lang == "console"
    for raw in block.text.splitlines():
        if pending:
            line = pending + " " + raw.strip()
        elif prompted:
            if not raw.startswith("$ "):
                continue
            line = raw[2:].strip()
        else:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
        if line.endswith("\\"):
            pending = line[:-1].rstrip()
            continue
        pending = ""
        commands.append(line)
    return commands


@dataclass(frozen=True)
class Invocation:
    """One simple command of a command line: environment assignments, then the words."""

    env: dict[str, str]
    words: list[str]


def invocations(line: str) -> list[Invocation]:
    """Split a command line into its simple commands (at ``&&``, ``||``, ``;`` and ``|``),
    dropping comments and redirections."""
    line = _PLACEHOLDER.sub(r"\1", line)  # `trace <correlation-id>`: a value to fill in
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    result: list[Invocation] = []
    words: list[str] = []
    redirect = False
    try:
        tokens = [*lexer, ";"]
    except ValueError:  # a quotation that goes on in lines the block does not prompt
        return [Invocation({}, line.split()[:1])]
    for token in tokens:
        if token in {"&&", "||", ";", "|", "&"}:
            env: dict[str, str] = {}
            while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
                name, _, value = words.pop(0).partition("=")
                env[name] = value
            if words or env:
                result.append(Invocation(env, words))
            words = []
        elif token in {">", ">>", "<", "2>"}:
            redirect = True
        elif redirect:
            redirect = False
        else:
            words.append(token)
    return result


def partner_options(blocks: list[CodeBlock]) -> dict[str, str] | None:
    """The options of the last ``python -m dovetail.testing.partner`` command in ``blocks``
    (``--port``, ``--client-id``, ...), or ``None`` when none starts the test partner."""
    found: dict[str, str] | None = None
    for block in blocks:
        for line in command_lines(block) if block.lang in SHELLS else []:
            for step in invocations(line):
                if step.words[:3] == ["python", "-m", "dovetail.testing.partner"]:
                    options = step.words[3:]
                    found = dict(zip(options[::2], options[1::2], strict=False))
    return found
