"""A real asyncssh SFTP server on 127.0.0.1, chrooted to a temporary folder, for the tests.

The server accepts the generated client key and the password ``s3cret`` for user ``tester``,
records every open and rename it serves, and can be told to fail writes half-way.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from dovetail.core.component import BuildContext
from dovetail.core.envelope import Envelope
from dovetail.plugins.registry import default_registry
from dovetail.store.sqlite import SqliteStore

USER = "tester"
PASSWORD = "s3cret"


@dataclass
class ServerLog:
    """What the server did, and faults to inject."""

    opened: list[tuple[str, int]] = field(default_factory=list)
    renamed: list[tuple[str, str]] = field(default_factory=list)
    fail_writes_after: int | None = None
    """Fail a write once this many bytes of the file have been written."""


@dataclass
class SftpServer:
    """A running test server: where it listens, its root folder and its host key."""

    port: int
    root: Path
    host_key: asyncssh.SSHKey
    client_key: asyncssh.SSHKey
    log: ServerLog

    def connection(self, **extra: Any) -> dict[str, Any]:
        """Connection fields for a source or sink config: key login, pinned host key."""
        fields: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": self.port,
            "username": USER,
            "private_key": self.client_key.export_private_key().decode(),
            "host_key": self.host_key.export_public_key().decode().strip(),
            "connect_timeout": 10,
        }
        fields.update(extra)
        return fields

    def put(self, relative: str, content: str | bytes) -> Path:
        """Create a file on the server (as if a partner uploaded it)."""
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return path


class _Login(asyncssh.SSHServer):
    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return username == USER and password == PASSWORD


def _sftp_factory(root: Path, log: ServerLog) -> type[asyncssh.SFTPServer]:
    class ChrootedServer(asyncssh.SFTPServer):
        def __init__(self, chan: asyncssh.SSHServerChannel[bytes]) -> None:
            super().__init__(chan, chroot=str(root).encode())
            self._written: dict[int, int] = {}

        def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> object:
            log.opened.append((self.map_path(path).decode()[len(str(root)) :], pflags))
            return super().open(path, pflags, attrs)

        def write(self, file_obj: object, offset: int, data: bytes) -> int:
            done = self._written.get(id(file_obj), 0)
            limit = log.fail_writes_after
            if limit is not None and done + len(data) > limit:
                raise asyncssh.SFTPFailure("disk quota exceeded")
            self._written[id(file_obj)] = done + len(data)
            result = super().write(file_obj, offset, data)
            assert isinstance(result, int)
            return result

        def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
            log.renamed.append((oldpath.decode(), newpath.decode()))
            super().posix_rename(oldpath, newpath)

    return ChrootedServer


@pytest.fixture(scope="session")
def keys() -> tuple[asyncssh.SSHKey, asyncssh.SSHKey]:
    """A host key and a client key, generated once."""
    return asyncssh.generate_private_key("ssh-ed25519"), asyncssh.generate_private_key(
        "ssh-ed25519"
    )


@contextlib.asynccontextmanager
async def sftp_server(
    root: Path, keys: tuple[asyncssh.SSHKey, asyncssh.SSHKey]
) -> AsyncIterator[SftpServer]:
    """Start the server on a free port of 127.0.0.1; stop it on exit."""
    host_key, client_key = keys
    await asyncio.to_thread(root.mkdir, parents=True, exist_ok=True)
    log = ServerLog()
    authorized = asyncssh.import_authorized_keys(client_key.export_public_key().decode())
    acceptor = await asyncssh.listen(
        "127.0.0.1",
        0,
        server_host_keys=[host_key],
        authorized_client_keys=authorized,
        server_factory=_Login,
        sftp_factory=_sftp_factory(root, log),
        allow_scp=False,
    )
    port = acceptor.sockets[0].getsockname()[1]
    try:
        yield SftpServer(port, root, host_key, client_key, log)
    finally:
        acceptor.close()
        await acceptor.wait_closed()


def build(
    kind: str,
    raw: dict[str, Any],
    project: Path,
    *,
    store: SqliteStore | None = None,
    once: bool = True,
    batch_size: int = 500,
) -> Any:
    """Build an ``sftp`` source or sink through the real registry, as the runtime would."""
    spec = default_registry().get(kind, "sftp")  # type: ignore[arg-type]
    assert spec is not None
    config = spec.config.model_validate(raw, context={"project_dir": project})
    context = BuildContext(
        flow="test-flow",
        flow_version="1.0.0",
        project_dir=project,
        store=store,
        once=once,
        options={"batch_size": batch_size},
    )
    return spec.factory(config, context)


async def drain(source: Any) -> list[Envelope]:
    """Open ``source``, run it to the end (``once``) and return every emitted envelope."""
    envelopes: list[Envelope] = []

    async def emit(batch: list[Envelope]) -> None:
        envelopes.extend(batch)

    await source.open()
    await source.run(emit)
    return envelopes
