"""Path confinement: relative paths only, no ``..``, no symlink leading out of the root."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dovetail.errors import PayloadRejected, PermanentError
from dovetail.safety.paths import (
    PathEscapeError,
    check_file_name,
    check_relative,
    confine,
    glob_base,
    is_inside,
)


@pytest.mark.parametrize(
    "value",
    [
        "../x",
        "a/../../x",
        "a/..",
        "/etc/passwd",
        "C:\\x",
        "\\\\server\\share",
        "..\\x",
        "",
        "a\x00b",
    ],
)
def test_check_relative_refuses_paths_that_can_leave_their_folder(value: str) -> None:
    with pytest.raises(PathEscapeError):
        check_relative(value)


@pytest.mark.parametrize("value", ["a.csv", "inbox/orders/*.csv", "./a", "a..b/c", "sub/dir/"])
def test_check_relative_accepts_paths_inside(value: str) -> None:
    assert check_relative(value) == value


def test_path_escape_is_a_permanent_payload_error() -> None:
    with pytest.raises(PermanentError, match=r"must not contain '\.\.'"):
        check_relative("../x", what="filename")


def test_confine_returns_the_path_under_the_root(tmp_path: Path) -> None:
    assert confine(tmp_path, "a/b.txt") == tmp_path / "a/b.txt"


def test_confine_refuses_a_symlink_anywhere_on_the_way_out(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    outside = tmp_path_factory.mktemp("outside")
    (tmp_path / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(PathEscapeError, match="outside"):
        confine(tmp_path, "link/deeper/file.txt", what="path")
    (tmp_path / "inside").mkdir()
    (tmp_path / "ok").symlink_to(tmp_path / "inside", target_is_directory=True)
    assert confine(tmp_path, "ok/file.txt") == tmp_path / "ok/file.txt"


def test_is_inside_resolves_symlinks_of_the_root_too(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    real = tmp_path_factory.mktemp("real")
    (tmp_path / "root").symlink_to(real, target_is_directory=True)
    assert is_inside(tmp_path / "root" / "x", tmp_path / "root")
    assert not is_inside(tmp_path / "elsewhere", tmp_path / "root")


@pytest.mark.parametrize(
    ("pattern", "base"),
    [
        ("inbox/orders/*.csv", "inbox/orders"),
        ("inbox/**/*.csv", "inbox"),
        ("*.csv", "."),
        ("in[a-z]/x.csv", "."),
        ("inbox/a.csv", "inbox"),
    ],
)
def test_glob_base_is_the_fixed_leading_folder(pattern: str, base: str) -> None:
    assert glob_base(pattern) == base


names = st.one_of(
    st.text(max_size=300),
    st.text(alphabet="./\\a\x00", max_size=8),
    st.text(alphabet="ab/", min_size=250, max_size=270),
)


@given(name=names)
def test_a_file_name_that_passes_the_check_can_be_created(
    tmp_path_factory: pytest.TempPathFactory, name: str
) -> None:
    """Every name is either refused (a permanent failure) or can really be written: the file
    system never gets a name it refuses, which would be retried as a transient error."""
    try:
        check_file_name(name)
    except PayloadRejected:
        return
    folder = tmp_path_factory.getbasetemp() / "file-names" / uuid.uuid4().hex
    target = folder / name
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("xb") as stream:
        stream.write(b"x")
    assert target.read_bytes() == b"x" and target.is_relative_to(folder)
