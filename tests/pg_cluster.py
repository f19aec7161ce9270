"""A throwaway PostgreSQL cluster for the tests: ``initdb`` into a temporary directory, a
Unix socket only (no TCP), stopped and removed at the end.

``initdb`` refuses to run as root: as root the cluster is made and run by the ``postgres``
user (``runuser``), in a directory it owns. The settings are those the store's shred step
needs (docs/deployment.md, "Several hosts"): ``wal_recycle = off``, no archiving, no kept WAL.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

SERVER_BINARIES = ("initdb", "pg_ctl", "postgres")


def missing_binaries() -> list[str]:
    """The server programs that are not on the PATH (nor in /usr/lib/postgresql/*/bin)."""
    return [b for b in SERVER_BINARIES if _binary(b) is None]


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    return None


class Cluster:
    """One running cluster: ``dsn(schema)`` names a fresh schema's store location."""

    def __init__(self, *, fsync: bool = True):
        self.root = Path(tempfile.mkdtemp(prefix="erase-pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root / "socket"
        self.log = self.root / "server.log"
        self.socket_dir.mkdir()
        self._as: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            for p in (self.root, self.socket_dir):
                os.chown(p, user.pw_uid, user.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        self._run([_binary("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync", "--wal-segsize=1",
                   "-E", "UTF8", "--locale=C"])
        settings = {
            "listen_addresses": "''", "unix_socket_directories": f"'{self.socket_dir}'", "port": "5432",
            "wal_recycle": "off", "wal_keep_size": "0", "archive_mode": "off", "max_connections": "60",
            "shared_buffers": "32MB", "fsync": "on" if fsync else "off", "logging_collector": "off",
        }
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write("".join(f"{k} = {v}\n" for k, v in settings.items()))
        self.start()

    def _run(self, args, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(self._as + [str(a) for a in args], check=check, capture_output=True, text=True,
                              timeout=120)

    def start(self) -> None:
        self._run([_binary("pg_ctl"), "-D", self.data, "-l", self.log, "-w", "-t", "60", "start"])

    def stop(self, mode: str = "fast") -> None:
        self._run([_binary("pg_ctl"), "-D", self.data, "-m", mode, "-w", "-t", "60", "stop"], check=False)

    def dsn(self, schema: str = "public", database: str = "postgres") -> str:
        """A connection URI over the socket whose search_path is ``schema``."""
        return f"postgresql:///{database}?host={self.socket_dir}&port=5432&user=postgres&options=-csearch_path%3D{schema}"

    def new_schema(self) -> str:
        """A new empty schema's DSN (one store per schema)."""
        import psycopg

        name = "s_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {name}")
        return self.dsn(name)

    def sql(self, query: str, params=None, dsn: str | None = None):
        """Run one statement as the superuser; its rows (or None)."""
        import psycopg

        with psycopg.connect(dsn or self.dsn(), autocommit=True) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else None

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
