"""File connectors: input limits dead-letter with a reason, compressed input is refused, and
nothing is read or written outside the declared folders (``..``, symlinks)."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pytest

from dovetail.connectors.file import readers
from dovetail.connectors.file import source as file_source
from tests.safety.flows import run_flow_file

SOURCE_FLOW = """\
flow: f
version: 1.0.0
source:
  file: {{path: "inbox/*.{ext}", {options}}}
sink:
  file: {{path: outbox/out.jsonl}}
"""


def flow_with(ext: str, options: str) -> str:
    return SOURCE_FLOW.format(ext=ext, options=options)


def nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = {"k": value}
    return value


def deep_line(depth: int) -> str:
    return orjson.dumps({"id": 1, "deep": nested(depth)}).decode()


# (extension, file content, limit setting, expected reason fragment, the limit switched off)
LIMIT_CASES = [
    pytest.param(
        "csv",
        "id,note\n1," + "x" * 5000 + "\n2,ok\n",
        "max_record_bytes: 1KiB",
        "line 2: record larger than the limit of 1 KiB (max_record_bytes)",
        "max_record_bytes: 1MiB",
        id="record size",
    ),
    pytest.param(
        "csv",
        'id,note\n1,"' + "y\n" * 3000 + '"\n2,ok\n',
        "max_record_bytes: 2KiB",
        "record larger than the limit of 2 KiB (max_record_bytes)",
        "max_record_bytes: 1MiB",
        id="csv field size",
    ),
    pytest.param(
        "jsonl",
        deep_line(80) + "\n" + '{"id": 2}\n',
        "max_depth: 64",
        "line 1: nesting deeper than the limit of 64 levels (max_depth)",
        "max_depth: 200",
        id="nesting depth",
    ),
    pytest.param(
        "json",
        orjson.dumps([{"id": 1, "pad": "z" * 4000}]).decode(),
        "max_file_bytes: 1KiB",
        "file is 3.9 KiB, larger than the limit of 1 KiB (max_file_bytes)",
        "max_file_bytes: 1MiB",
        id="document size",
    ),
]


@pytest.mark.parametrize(("ext", "content", "limit", "reason", "switched_off"), LIMIT_CASES)
def test_each_input_limit_dead_letters_with_its_reason_and_the_flow_continues(
    project: Path, ext: str, content: str, limit: str, reason: str, switched_off: str
) -> None:
    (project / "inbox").mkdir()
    (project / f"inbox/a.{ext}").write_text(content, encoding="utf-8")
    (project / f"inbox/b.{ext}").write_text(
        "id\n3\n" if ext == "csv" else '{"id": 3}\n' if ext == "jsonl" else '[{"id": 3}]',
        encoding="utf-8",
    )
    result = run_flow_file(project, flow_with(ext, limit))
    assert len(result.reasons) == 1
    assert reason in result.reasons[0]
    assert {"id": 3} in result.delivered or {"id": "3"} in result.delivered


@pytest.mark.parametrize(("ext", "content", "limit", "reason", "switched_off"), LIMIT_CASES)
def test_with_the_limit_raised_the_same_input_passes(
    project: Path, ext: str, content: str, limit: str, reason: str, switched_off: str
) -> None:
    (project / "inbox").mkdir()
    (project / f"inbox/a.{ext}").write_text(content, encoding="utf-8")
    result = run_flow_file(project, flow_with(ext, switched_off))
    assert result.reasons == []
    assert result.delivered


def write_gzip(project: Path) -> None:
    (project / "inbox").mkdir()
    (project / "inbox/a.csv").write_bytes(gzip.compress(b"id,total\n1,10\n" * 50))
    (project / "inbox/b.csv").write_text("id,total\n2,20\n", encoding="utf-8")


def test_compressed_input_is_refused_with_a_reason_and_the_next_file_is_read(
    project: Path,
) -> None:
    write_gzip(project)
    result = run_flow_file(project, flow_with("csv", "format: csv"))
    assert result.reasons == [
        "file is gzip-compressed; compressed input is not read"
        " (decompress it before it reaches the folder)"
    ]
    assert result.delivered == [{"id": "2", "total": "20"}]


def test_without_the_compression_check_a_gzip_file_is_read_as_garbage(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(readers, "compression_of", lambda head: None)
    write_gzip(project)
    result = run_flow_file(project, flow_with("csv", "format: csv"))
    assert not any("compressed" in reason for reason in result.reasons)


@pytest.mark.parametrize(
    "head",
    [b"\x1f\x8b\x08", b"PK\x03\x04", b"\xfd7zXZ\x00", b"BZh91AY&SY", b"\x28\xb5\x2f\xfd"],
)
def test_compression_formats_are_recognised(head: bytes) -> None:
    assert readers.compression_of(head) is not None


@pytest.mark.parametrize("head", [b"id,total\n", b"BZh,x\n", b"PK,name\n", b"", b"<?xml"])
def test_plain_text_is_not_taken_for_compressed(head: bytes) -> None:
    assert readers.compression_of(head) is None


# --- confinement ---------------------------------------------------------------------------

SINK_FLOW = """\
flow: f
version: 1.0.0
source:
  file: {path: "inbox/*.jsonl"}
sink:
  file: {path: outbox/, filename: 'name & ".json"'}
"""


def outside_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("outside")


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("../escaped", "must not contain '..'"),
        ("sub/../../escaped", "must not contain '..'"),
        ("/tmp/escaped", "must be relative to its folder"),
    ],
)
def test_file_names_built_from_message_content_cannot_leave_the_sink_folder(
    project: Path, name: str, reason: str
) -> None:
    (project / "inbox").mkdir()
    lines = [{"name": name}, {"name": "fine"}]
    (project / "inbox/a.jsonl").write_bytes(b"\n".join(orjson.dumps(x) for x in lines))
    result = run_flow_file(project, SINK_FLOW)
    assert len(result.reasons) == 1
    assert reason in result.reasons[0]
    assert (project / "outbox/fine.json").exists()
    assert not (project / "escaped.json").exists()
    assert not Path("/tmp/escaped.json").exists()


def test_a_file_name_through_a_symlink_out_of_the_sink_folder_is_refused(
    project: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    outside = outside_dir(tmp_path_factory)
    (project / "outbox").mkdir()
    (project / "outbox/link").symlink_to(outside, target_is_directory=True)
    (project / "inbox").mkdir()
    (project / "inbox/a.jsonl").write_text('{"name": "link/stolen"}\n{"name": "ok"}\n')
    result = run_flow_file(project, SINK_FLOW)
    assert len(result.reasons) == 1
    assert "outside" in result.reasons[0]
    assert list(outside.iterdir()) == []
    assert (project / "outbox/ok.json").exists()


def test_a_symlinked_input_file_pointing_out_is_not_read(
    project: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    outside = outside_dir(tmp_path_factory)
    (outside / "secret.jsonl").write_text('{"secret": "s3cr3t"}\n')
    (project / "inbox").mkdir()
    (project / "inbox/a.jsonl").symlink_to(outside / "secret.jsonl")
    result = run_flow_file(project, flow_with("jsonl", "format: jsonl"))
    assert result.delivered == []
    assert "symlink to a path outside the project" in result.reasons[0]


def test_without_the_symlink_check_the_outside_file_would_be_read(
    project: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(file_source, "is_inside", lambda path, root: True)
    outside = outside_dir(tmp_path_factory)
    (outside / "secret.jsonl").write_text('{"secret": "s3cr3t"}\n')
    (project / "inbox").mkdir()
    (project / "inbox/a.jsonl").symlink_to(outside / "secret.jsonl")
    result = run_flow_file(project, flow_with("jsonl", "format: jsonl"))
    assert result.delivered == [{"secret": "s3cr3t"}]


def test_archive_and_error_folders_through_a_symlink_out_are_refused(
    project: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    outside = outside_dir(tmp_path_factory)
    (project / "archive").symlink_to(outside, target_is_directory=True)
    (project / "inbox").mkdir()
    (project / "inbox/a.jsonl").write_text('{"id": 1}\n')
    with pytest.raises(Exception, match="outside"):
        run_flow_file(project, flow_with("jsonl", "after: {move_to: archive/}"))
    assert list(outside.iterdir()) == []
    assert (project / "inbox/a.jsonl").exists()


@pytest.mark.parametrize(
    "options",
    ["after: {move_to: ../archive/}", "after: {on_error_move_to: /tmp/x/}"],
)
def test_archive_folders_with_dot_dot_or_absolute_paths_are_config_errors(
    project: Path, options: str
) -> None:
    (project / "inbox").mkdir()
    with pytest.raises(Exception, match=r"after folder must"):
        run_flow_file(project, flow_with("jsonl", options))
