"""Purging replaced bucket keys from the database cluster's files (the step after a forget).

After a forget commits, the replaced bucket keys still sit in the key table's dead tuples and
in the WAL. This step, run by the writer right after its commit (and by the next write, open
or read when the writer died first), makes every file under the data directory free of them:

1. wait until no snapshot older than the forget is open in the database (such a snapshot still
   sees the old keys, and ``VACUUM FULL`` copies what it can see);
2. ``VACUUM FULL erase_keys``: the key table (about 1,000 small rows) is rewritten into a new
   file; the old file is truncated at once and unlinked at the next checkpoint;
3. ``pg_switch_wal()`` then ``CHECKPOINT``: the WAL segments that held the old keys
   (their insertion and full-page images) end before the checkpoint's redo point, so the
   checkpoint removes them; ``wal_recycle = off`` makes removal an unlink, not a rename of
   the old segment for reuse.

It needs ``wal_recycle = off``, ``wal_keep_size = 0``, no WAL archiving, no replication slot
holding WAL back, and a role that may run ``CHECKPOINT`` (``pg_checkpoint``) and
``pg_switch_wal()`` and see every session's snapshot (``pg_read_all_stats``); :func:`problems`
lists what is missing.
"""

from __future__ import annotations

import time

#: How long the shred step waits for older snapshots before giving up (the next write retries).
SNAPSHOT_WAIT_S = 30.0


def problems(conn) -> list[str]:
    """Settings and privileges the shred step needs that this server or role lacks."""
    out: list[str] = []
    settings = dict(conn.execute(
        "SELECT name, setting FROM pg_settings WHERE name IN ('wal_recycle', 'wal_keep_size', 'archive_mode')"
    ).fetchall())
    if settings.get("wal_recycle") != "off":
        out.append("wal_recycle must be off (recycled WAL segments keep old key-table records)")
    if settings.get("wal_keep_size", "0") != "0":
        out.append("wal_keep_size must be 0 (kept WAL segments keep old key-table records)")
    if settings.get("archive_mode", "off") != "off":
        out.append("archive_mode must be off (archived WAL keeps old key-table records)")
    slots = conn.execute("SELECT count(*) FROM pg_replication_slots WHERE restart_lsn IS NOT NULL").fetchone()[0]
    if slots:
        out.append(f"{slots} replication slot(s) hold WAL back (their WAL keeps old key-table records)")
    superuser, may_checkpoint, may_switch, sees_all = conn.execute(
        "SELECT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user), pg_has_role('pg_checkpoint', 'MEMBER'),"
        " has_function_privilege('pg_switch_wal()', 'EXECUTE'), pg_has_role('pg_read_all_stats', 'MEMBER')"
    ).fetchone()
    if not (superuser or may_checkpoint):
        out.append("the role may not run CHECKPOINT (GRANT pg_checkpoint TO it)")
    if not (superuser or may_switch):
        out.append("the role may not run pg_switch_wal() (GRANT EXECUTE ON FUNCTION pg_switch_wal() TO it)")
    if not (superuser or sees_all):
        # pg_stat_activity hides other roles' snapshots otherwise, and VACUUM FULL keeps what they see
        out.append("the role cannot see other sessions' snapshots (GRANT pg_read_all_stats TO it)")
    return out


def older_snapshots(conn, xid: str) -> list[int]:
    """Backends of this database whose snapshot may still see transaction ``xid`` as running."""
    return [r[0] for r in conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        " AND backend_xmin IS NOT NULL AND age(backend_xmin) >= age(%s::xid)", (xid,)
    ).fetchall()]


def wait_for_snapshots(conn, xid: str, timeout: float = SNAPSHOT_WAIT_S) -> list[int]:
    """Wait until no older snapshot is open; returns the pids still holding one at ``timeout``."""
    deadline = time.monotonic() + timeout
    pause = 0.001
    while True:
        pids = older_snapshots(conn, xid)
        if not pids or time.monotonic() >= deadline:
            return pids
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


def purge(conn) -> None:
    """Rewrite the key table and retire the WAL that held its old versions (autocommit ``conn``)."""
    conn.execute("VACUUM FULL erase_keys")
    conn.execute("SELECT pg_switch_wal()")  # the old keys' records end in the segment it closes,
    conn.execute("CHECKPOINT")  # whose redo point is past it, so that segment is removed
