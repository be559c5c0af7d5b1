"""Config validation of the ``sftp`` source and sink: login, host key checking, paths."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from dovetail.connectors.sftp import sink, source
from dovetail.connectors.sftp.sink import SftpSinkConfig
from dovetail.connectors.sftp.source_config import SftpSourceConfig
from dovetail.testing.components import build_component

BASE: dict[str, Any] = {"host": "sftp.example", "username": "u", "password": "p"}


def test_a_login_secret_is_required() -> None:
    with pytest.raises(ValidationError, match="give password or private_key"):
        SftpSourceConfig.model_validate({"host": "h", "username": "u", "path": "in/*.csv"})


@pytest.mark.parametrize(
    "extra",
    [
        {"host_key": "ssh-ed25519 AAAA", "insecure_skip_host_key_check": True},
        {"host_key": "ssh-ed25519 AAAA", "known_hosts": "known_hosts"},
    ],
)
def test_host_key_options_exclude_each_other(extra: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="exclude each other"):
        SftpSinkConfig.model_validate({**BASE, "filename": "name", **extra})


def test_insecure_mode_must_be_explicit_and_is_off_by_default() -> None:
    config = SftpSinkConfig.model_validate({**BASE, "filename": "name"})
    assert config.insecure_skip_host_key_check is False
    assert "p" not in repr(config.password)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("path", "../other/*.csv"),
        ("path", "/etc/*.csv"),
        ("folder", "incoming/../.."),
    ],
)
def test_paths_cannot_escape(field: str, value: str) -> None:
    raw = {**BASE, "path": "in/*.csv", field: value}
    with pytest.raises(ValidationError):
        SftpSourceConfig.model_validate(raw)


def test_after_folders_cannot_escape() -> None:
    with pytest.raises(ValidationError, match=r"\.\."):
        SftpSourceConfig.model_validate({**BASE, "path": "in/*.csv", "after": {"move_to": "../x"}})


def test_format_comes_from_the_extension_and_xml_needs_per_message() -> None:
    assert SftpSourceConfig.model_validate({**BASE, "path": "in/*.jsonl"}).format == "jsonl"
    with pytest.raises(ValidationError, match="per_message"):
        SftpSinkConfig.model_validate(
            {**BASE, "filename": "name", "mode": "per_batch", "format": "xml"}
        )


@pytest.mark.parametrize(
    ("kind", "example"),
    [("source", example) for example in source.SPEC.examples]
    + [("sink", example) for example in sink.SPEC.examples],
)
def test_spec_examples_build(kind: str, example: str, tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config/known_hosts").write_text("")
    if kind == "source":
        component = build_component("source", example, tmp_path)
    else:
        component = build_component("sink", example, tmp_path)
    assert component.name == "sftp"


def test_every_config_field_is_documented() -> None:
    for spec in (source.SPEC, sink.SPEC):
        for name, field in spec.config.model_json_schema()["properties"].items():
            assert field.get("description"), f"{spec.name}.{name} has no description"
