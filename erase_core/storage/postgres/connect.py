"""Connecting to PostgreSQL: which locations are connection strings, and a connection that
fails fast with the server named (never a hang on a server that is down or unreachable)."""

from __future__ import annotations

from typing import Any

from ..errors import StoreError

#: Seconds libpq waits for a server before giving up (unless the DSN sets ``connect_timeout``).
CONNECT_TIMEOUT_S = 5
_SCHEMES = ("postgresql://", "postgres://")


def is_dsn(location: Any) -> bool:
    """Whether ``location`` is a PostgreSQL connection URI (``postgresql://…``)."""
    return isinstance(location, str) and location.startswith(_SCHEMES)


def describe(dsn: str) -> str:
    """The server and database a DSN names, without its password (for messages)."""
    try:
        from psycopg.conninfo import conninfo_to_dict

        info = conninfo_to_dict(dsn)
    except Exception:  # noqa: BLE001 - a malformed DSN is reported by connect()
        return "PostgreSQL (unparsable connection string)"
    host = str(info.get("host") or "localhost")
    port = str(info.get("port") or "5432")
    where = f"socket {host}, port {port}" if host.startswith("/") else f"host {host}, port {port}"
    return f"PostgreSQL at {where}, database {info.get('dbname') or info.get('user') or '(default)'}"


def connect(dsn: str):
    """An autocommit psycopg connection; :class:`StoreError` naming the server when it cannot
    be reached within ``connect_timeout`` (default :data:`CONNECT_TIMEOUT_S`), the driver is
    missing, or the login is refused."""
    try:
        import psycopg
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:
        raise StoreError(
            'a PostgreSQL store needs psycopg 3: pip install "erase-icl[postgres]"'
        ) from None
    try:
        info = conninfo_to_dict(dsn)
    except psycopg.Error as exc:
        raise StoreError(f"not a valid PostgreSQL connection string: {exc}") from None
    extra: dict[str, Any] = {}
    if "connect_timeout" not in info:
        extra["connect_timeout"] = CONNECT_TIMEOUT_S
    try:
        return psycopg.connect(dsn, autocommit=True, **extra)
    except psycopg.Error as exc:
        cause = " ".join(str(exc).split())
        raise StoreError(f"cannot connect to {describe(dsn)}: {cause}") from None
