"""SFTP connection settings shared by the ``sftp`` source and sink, and how they connect.

Authentication is by password or private key (usually a ``${secret:...}``), never by keys
found lying around on the machine. The server's host key is always checked: against a
pinned ``host_key``, a project ``known_hosts`` file, or the user's ``~/.ssh/known_hosts``;
turning the check off needs the explicit ``insecure_skip_host_key_check``.
"""

from __future__ import annotations

import posixpath
from typing import TYPE_CHECKING, Any

from pydantic import Field, SecretStr, field_validator, model_validator

from dovetail.config.fields import ProjectFile
from dovetail.config.types import Duration
from dovetail.core.component import BuildContext
from dovetail.errors import DovetailError, PermanentError, TransientError
from dovetail.plugins.spec import ComponentConfig
from dovetail.safety.paths import PathEscapeError, check_relative

if TYPE_CHECKING:
    import asyncssh


class SftpConnectError(DovetailError):
    """The SFTP server could not be reached, or refused the host key or the credentials."""


class SftpConnectionConfig(ComponentConfig):
    """Connection fields common to the ``sftp`` source and sink."""

    host: str = Field(min_length=1)
    """Host name or address of the SFTP server."""
    port: int = Field(default=22, ge=1, le=65535)
    """TCP port of the SSH server."""
    username: str = Field(min_length=1)
    """Login name."""
    password: SecretStr | None = None
    """Password, e.g. `${secret:SFTP_PASSWORD}`. Give `password`, `private_key` or both."""
    private_key: SecretStr | None = None
    """Private key in OpenSSH or PEM form, e.g. `${secret:SFTP_KEY}`."""
    passphrase: SecretStr | None = None
    """Passphrase of an encrypted `private_key`."""
    host_key: str | None = None
    """Pin the server's public host key, as in a `known_hosts` line without the host name
    (`ssh-ed25519 AAAAC3...`). Any other key is refused."""
    known_hosts: ProjectFile | None = None
    """A `known_hosts` file in the project that lists the server. Default (no `host_key`
    either): the user's `~/.ssh/known_hosts`."""
    insecure_skip_host_key_check: bool = False
    """Accept any host key. Only for throw-away test servers: it allows a man in the middle."""
    folder: str = "."
    """The remote folder everything happens in (absolute, or relative to the login folder).
    Paths, archive folders and file names are relative to it and can never leave it."""
    connect_timeout: Duration = 30.0
    """Time allowed to connect and log in."""

    @field_validator("folder")
    @classmethod
    def _folder(cls, value: str) -> str:
        if not value.strip() or "\x00" in value:
            raise ValueError("folder must name a remote folder")
        if ".." in value.split("/"):
            raise ValueError(f"folder must not contain '..', found {value!r}")
        return value

    @model_validator(mode="after")
    def _auth_and_host_check(self) -> SftpConnectionConfig:
        if self.password is None and self.private_key is None:
            raise ValueError("give password or private_key (or both)")
        pinned = [
            name
            for name in ("host_key", "known_hosts", "insecure_skip_host_key_check")
            if getattr(self, name)
        ]
        if len(pinned) > 1:
            raise ValueError(f"{' and '.join(pinned)} exclude each other; choose one")
        return self


def remote_join(folder: str, relative: str, *, what: str) -> str:
    """``folder/relative`` after checking ``relative`` stays inside ``folder``.

    Raises ``PathEscapeError`` (a ``PermanentError``) for absolute paths or ``..``.
    """
    check_relative(relative, what=what)
    joined = posixpath.normpath(posixpath.join(folder, relative))
    base = posixpath.normpath(folder)
    if base != "." and joined != base and not joined.startswith(base.rstrip("/") + "/"):
        raise PathEscapeError(f"{what} {relative!r} leaves the folder {folder!r}")
    if base == "." and (joined.startswith("/") or joined.split("/")[0] == ".."):
        raise PathEscapeError(f"{what} {relative!r} leaves the login folder")
    return joined


def _known_hosts(config: SftpConnectionConfig, context: BuildContext) -> Any:
    import asyncssh

    if config.insecure_skip_host_key_check:
        return None
    if config.host_key is not None:
        try:
            key = asyncssh.import_public_key(config.host_key)
        except (asyncssh.KeyImportError, ValueError) as exc:
            raise SftpConnectError(f"host_key is not a public key: {exc}") from None
        return ([key], [], [])
    if config.known_hosts is not None:
        return str(context.resolve(config.known_hosts))
    return ()  # asyncssh: the user's ~/.ssh/known_hosts


def _client_keys(config: SftpConnectionConfig) -> list[Any] | None:
    import asyncssh

    if config.private_key is None:
        return None
    passphrase = config.passphrase.get_secret_value() if config.passphrase else None
    try:
        return [asyncssh.import_private_key(config.private_key.get_secret_value(), passphrase)]
    except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError, ValueError) as exc:
        # the reason never quotes the key
        raise SftpConnectError(f"private_key cannot be read: {type(exc).__name__}") from None


async def connect(
    config: SftpConnectionConfig, context: BuildContext
) -> tuple[asyncssh.SSHClientConnection, asyncssh.SFTPClient]:
    """Connect, check the host key, log in and start the SFTP subsystem.

    Raises ``SftpConnectError`` naming what failed (host key, login, network).
    """
    import asyncssh

    options: dict[str, Any] = {
        "known_hosts": _known_hosts(config, context),
        "username": config.username,
        "client_keys": _client_keys(config),
        "password": config.password.get_secret_value() if config.password else None,
        "agent_path": None,
        "config": None,
        "connect_timeout": config.connect_timeout,
        "login_timeout": config.connect_timeout,
    }
    where = f"{config.username}@{config.host}:{config.port}"
    try:
        connection = await asyncssh.connect(config.host, config.port, **options)
    except asyncssh.HostKeyNotVerifiable as exc:
        raise SftpConnectError(
            f"host key of {config.host}:{config.port} is not trusted ({exc.reason});"
            " pin it with host_key or list it in known_hosts"
        ) from None
    except asyncssh.PermissionDenied:
        raise SftpConnectError(f"login refused for {where}") from None
    except (OSError, asyncssh.Error, TimeoutError) as exc:
        raise SftpConnectError(f"cannot connect to {where}: {describe(exc)}") from None
    try:
        client = await connection.start_sftp_client()
    except (OSError, asyncssh.Error) as exc:
        connection.close()
        raise SftpConnectError(f"{where} offers no SFTP: {describe(exc)}") from None
    return connection, client


def describe(exc: BaseException) -> str:
    """A short, secret-free description of an SSH or SFTP failure."""
    reason = getattr(exc, "reason", None)
    text = reason if isinstance(reason, str) and reason else str(exc)
    return text or type(exc).__name__


def translate(exc: BaseException, action: str) -> PermanentError | TransientError:
    """An SFTP failure as ours: permission and bad-name errors are permanent, the rest
    (lost connection, server failure) transient."""
    import asyncssh

    reason = f"{action}: {describe(exc)}"
    if isinstance(exc, asyncssh.SFTPError) and exc.code in (
        asyncssh.FX_PERMISSION_DENIED,
        asyncssh.FX_INVALID_FILENAME,
        asyncssh.FX_WRITE_PROTECT,
    ):
        return PermanentError(reason)
    return TransientError(reason)
