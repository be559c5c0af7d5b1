"""Secret providers behind ``${secret:NAME}`` and the refresh of a secret after a 401.

``${secret:NAME}`` is looked up in the environment, then each secret-files folder, then the
providers configured in ``dovetail.yaml`` (today: HashiCorp Vault, extra ``vault``)::

    secrets:
      vault:
        url: https://vault.example.com:8200
        mount: secret          # KV engine mount
        path: dovetail/prod    # ${secret:ERP_TOKEN} reads key ERP_TOKEN of this secret
        token_env: VAULT_TOKEN # or role_id_env + secret_id_env (AppRole)

Values are read once, when flows are loaded (``dovetail run``, ``lint --env``), registered
for redaction and never printed. Where a secret came from is remembered, so a component
whose partner answers 401 can call ``refresh_secret(NAME)`` to read the current value again
(a rotated Vault secret or secret file).
"""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from dovetail.config.model import SecretsSettings, VaultSettings
from dovetail.errors import DovetailError
from dovetail.observability.redaction import MIN_SECRET_LENGTH, register_secret


class SecretError(DovetailError):
    """A secret provider could not be read (unreachable, denied, misconfigured)."""


class SecretProvider(Protocol):
    """A place ``${secret:NAME}`` values are read from after the environment and files."""

    def describe(self, name: str) -> str:
        """Where ``name`` is looked for, for the "looked in" list of an undefined secret."""
        ...

    def read(self, name: str, *, fresh: bool = False) -> str | None:
        """The value of ``name`` or None; ``fresh`` reads again instead of using a cache.

        Raises ``SecretError`` when the provider cannot be read at all.
        """
        ...


class VaultProvider:
    """Keys of one secret of a HashiCorp Vault KV engine (version 1 or 2).

    Authenticates with a token from an environment variable or with AppRole
    (``role_id``/``secret_id`` from environment variables). The secret is read once and
    cached; ``read(name, fresh=True)`` reads it again (after a rotation).
    """

    def __init__(
        self,
        settings: VaultSettings,
        project_root: Path,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self._root = project_root
        self._environ = os.environ if environ is None else environ
        self._lock = threading.Lock()
        self._client: Any = None
        self._data: dict[str, Any] | None = None

    @property
    def location(self) -> str:
        """``<url> <mount>/<path>``, for messages (no credentials)."""
        return f"vault {self.settings.url} {self.settings.mount}/{self.settings.path}"

    def describe(self, name: str) -> str:
        return f"{self.location} key {name}"

    def read(self, name: str, *, fresh: bool = False) -> str | None:
        with self._lock:
            if self._data is None or fresh:
                self._data = self._fetch()
            value = self._data.get(name)
        if value is None:
            return None
        return value if isinstance(value, str) else str(value)

    def _fetch(self) -> dict[str, Any]:
        hvac = _import_hvac()
        requests: Any = importlib.import_module("requests")  # hvac's transport

        try:
            client = self._client or self._connect(hvac)
            self._client = client
            if self.settings.kv_version == 2:
                response = client.secrets.kv.v2.read_secret_version(
                    path=self.settings.path,
                    mount_point=self.settings.mount,
                    raise_on_deleted_version=True,
                )
                data = response["data"]["data"]
            else:
                response = client.secrets.kv.v1.read_secret(
                    path=self.settings.path, mount_point=self.settings.mount
                )
                data = response["data"]
        except hvac.exceptions.InvalidPath:
            return {}
        except (hvac.exceptions.Forbidden, hvac.exceptions.Unauthorized) as exc:
            self._client = None  # a new token or login on the next read
            raise SecretError(
                f"{self.location}: permission denied ({type(exc).__name__})"
            ) from None
        except hvac.exceptions.VaultError as exc:
            raise SecretError(f"{self.location}: {type(exc).__name__}") from None
        except requests.RequestException as exc:
            raise SecretError(f"{self.location}: unreachable ({type(exc).__name__})") from None
        return dict(data or {})

    def _connect(self, hvac: Any) -> Any:
        settings = self.settings
        verify: bool | str = True
        if settings.ca_cert:
            verify = str(self._root / settings.ca_cert)
        client = hvac.Client(
            url=settings.url,
            namespace=settings.namespace,
            verify=verify,
            timeout=settings.timeout,
        )
        if settings.role_id_env or settings.secret_id_env:
            role_id = self._env(settings.role_id_env, "role_id_env")
            secret_id = self._env(settings.secret_id_env, "secret_id_env")
            client.auth.approle.login(role_id=role_id, secret_id=secret_id)
        else:
            client.token = self._env(settings.token_env, "token_env")
        return client

    def _env(self, variable: str | None, option: str) -> str:
        if not variable:
            raise SecretError(f"{self.location}: secrets.vault.{option} is not set")
        value = self._environ.get(variable)
        if not value:
            raise SecretError(f"{self.location}: environment variable {variable} is not set")
        register_secret(value)
        return value


def _import_hvac() -> Any:
    try:
        hvac = importlib.import_module("hvac")
        importlib.import_module("hvac.exceptions")
    except ImportError:
        raise SecretError(
            "secrets.vault needs the 'vault' extra: pip install 'dovetail[vault]'"
        ) from None
    return hvac


_providers_lock = threading.Lock()
_providers: dict[tuple[str, str], list[SecretProvider]] = {}


def providers_for(project_root: Path, settings: SecretsSettings) -> list[SecretProvider]:
    """The providers configured in ``dovetail.yaml``, one set per project and settings."""
    key = (str(project_root), settings.model_dump_json())
    with _providers_lock:
        if key not in _providers:
            found: list[SecretProvider] = []
            if settings.vault is not None:
                found.append(VaultProvider(settings.vault, project_root))
            _providers[key] = found
        return _providers[key]


_origins_lock = threading.Lock()
_origins: dict[str, Callable[[], str | None]] = {}
_names: dict[str, str] = {}
"""Current value of each resolved secret -> its name (for ``refresh_value``)."""


def remember_origin(name: str, reread: Callable[[], str | None], value: str | None = None) -> None:
    """Record how secret ``name`` is read again, and its current ``value`` (called by the
    resolver)."""
    with _origins_lock:
        _origins[name] = reread
        if value:
            _names[value] = name


def refresh_secret(name: str) -> str:
    """Read secret ``name`` again from where it was resolved; the current value.

    For a component whose partner answers 401 with a credential that may have been rotated:
    the environment is read again, a secret file re-read, a Vault secret fetched again. The
    new value is registered for redaction. Raises ``SecretError`` when ``name`` was never
    resolved in this process, is no longer defined where it was found, or is now too short
    to be redacted (1 to 3 characters).
    """
    with _origins_lock:
        reread = _origins.get(name)
    if reread is None:
        raise SecretError(f"secret {name!r} was not resolved in this process")
    value = reread()
    if value is None:
        raise SecretError(f"secret {name!r} is no longer defined where it was found")
    if 0 < len(value) < MIN_SECRET_LENGTH:
        raise SecretError(
            f"secret {name!r} now has fewer than {MIN_SECRET_LENGTH} characters, too short"
            " to be redacted from output; not used"
        )
    register_secret(value)
    with _origins_lock:
        _names[value] = name
    return value


def refresh_value(value: str) -> str | None:
    """The current value of the secret whose value was ``value`` (read again from where it was
    found), or ``None`` when ``value`` is not a resolved secret or cannot be read again.

    Lets a component holding only resolved credentials (a sink's Basic password, bearer token
    or API key) pick up a rotated secret after a 401.
    """
    with _origins_lock:
        name = _names.get(value)
    if name is None:
        return None
    try:
        return refresh_secret(name)
    except SecretError:
        return None
