"""Config model of the ``sftp`` source: the SFTP connection plus the ``file`` source's
record formats, limits, polling and after-folders (read against the remote folder)."""

from __future__ import annotations

from dovetail.connectors.file.source_config import AfterConfig, FileSourceConfig
from dovetail.connectors.sftp.connection import SftpConnectionConfig


class SftpAfterConfig(AfterConfig):
    move_to: str | None = None
    """Remote folder (relative to `folder`) a file moves to once all its records are
    settled. Without it the file stays and is not read again unless it changes."""
    on_error_move_to: str | None = None
    """Remote folder (relative to `folder`) for files that could not be read completely
    (invalid document, unreadable encoding). Without it such files stay in place."""


class SftpSourceConfig(SftpConnectionConfig, FileSourceConfig):
    path: str
    """Glob of the remote files to read, relative to `folder` (`inbox/*.csv`; `**` matches
    sub-folders). Files are read in name order; hidden files (`.name`) are skipped, so
    upload to a hidden name and rename when done."""
    after: SftpAfterConfig | None = None
    """Where remote files go once all their records are settled (`move_to`) or when they
    cannot be read (`on_error_move_to`); both relative to `folder`."""
