"""Confine paths to their declared folders: no ``..``, no absolute paths, no symlink escape.

Connectors that touch the file system resolve every configured path and every path built
from message content through these functions, so a flow (or a payload) can never read or
write outside the folder it declared.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath, PureWindowsPath

from dovetail.errors import PayloadRejected


class PathEscapeError(PayloadRejected):
    """A path leaves its declared folder (``..``, an absolute path, or a symlink pointing out)."""


def check_relative(value: str, *, what: str = "path") -> str:
    """Check that ``value`` is a relative path without ``..`` parts; return it unchanged.

    Used by config validators (lint time) and for names built from message content.
    Raises ``PathEscapeError`` with a message naming ``what``.
    """
    if not value or not value.strip():
        raise PathEscapeError(f"{what} is empty")
    if "\x00" in value:
        raise PathEscapeError(f"{what} contains a NUL character")
    posix, windows = PurePosixPath(value), PureWindowsPath(value)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or value.startswith("\\"):
        raise PathEscapeError(f"{what} must be relative to its folder, found {value!r}")
    if ".." in posix.parts or ".." in windows.parts:
        raise PathEscapeError(f"{what} must not contain '..', found {value!r}")
    return value


NAME_MAX = 255
"""The longest file or folder name (in bytes, encoded) most file systems accept."""

PATH_MAX = 4096
"""The longest relative path (in bytes, encoded) a name built from a message may have."""


class InvalidFileName(PayloadRejected):
    """A file name built from a message can never be written: it names a folder (``.``,
    ``..``, a trailing ``/``), is too long, or cannot be encoded for the file system."""


def check_file_name(value: str, *, what: str = "filename") -> str:
    """Check that ``value`` names a file that can be created under its folder; return it.

    On top of ``check_relative`` (not empty, no NUL, relative, no ``..``): the last part is
    not ``.``, ``..`` or empty (``out/``), every part is at most ``NAME_MAX`` bytes and the
    whole at most ``PATH_MAX`` bytes in the file system's encoding. Raises
    ``PathEscapeError`` or ``InvalidFileName`` (both permanent), naming ``what``.
    """
    check_relative(value, what=what)
    last = value.replace("\\", "/").rsplit("/", 1)[-1]
    if last in ("", ".", ".."):
        raise InvalidFileName(f"{what} {value!r} names a folder, not a file")
    try:
        encoded = os.fsencode(value)
    except UnicodeError:
        raise InvalidFileName(
            f"{what} {value!r} cannot be encoded as a file name on this system"
        ) from None
    longest = max(len(part) for part in encoded.split(b"/"))
    if longest > NAME_MAX:
        raise InvalidFileName(
            f"{what} has a part of {longest} bytes; file names are limited to {NAME_MAX} bytes"
        )
    if len(encoded) > PATH_MAX:
        raise InvalidFileName(f"{what} is {len(encoded)} bytes; the limit is {PATH_MAX} bytes")
    return value


def is_inside(path: Path, root: Path) -> bool:
    """True when ``path``, with every symlink resolved, is ``root`` or lies under it."""
    real_root = Path(os.path.realpath(root))
    real = Path(os.path.realpath(path))
    return real == real_root or real.is_relative_to(real_root)


def confine(root: Path, relative: str, *, what: str = "path") -> Path:
    """Resolve ``relative`` under ``root`` and refuse it when it would leave ``root``.

    The returned path is ``root / relative`` (symlinks not resolved, so positions and names
    stay as the user wrote them). Raises ``PathEscapeError`` when ``relative`` is absolute,
    contains ``..``, or resolves (through a symlink anywhere on the way) outside ``root``.
    """
    check_relative(relative, what=what)
    candidate = root / relative
    if not is_inside(candidate, root):
        raise PathEscapeError(
            f"{what} {relative!r} resolves to {os.path.realpath(candidate)}, outside"
            f" {root} (a symlink points out of the folder)"
        )
    return candidate


def glob_base(pattern: str) -> str:
    """The fixed leading folder of a glob pattern (``inbox/orders`` for ``inbox/orders/*.csv``)."""
    fixed: list[str] = []
    for part in PurePosixPath(pattern).parts[:-1]:
        if any(ch in part for ch in "*?["):
            break
        fixed.append(part)
    return "/".join(fixed) or "."
