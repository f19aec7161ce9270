"""The tables of a PostgreSQL store, and recognising them.

A store lives in the first schema of the connection's ``search_path`` (choose one per store
with ``options=-csearch_path=NAME`` in the DSN), in tables whose names start with ``erase_``.
Nothing in them is an example's content in clear: rows are sealed (:mod:`...rows`), their keys
wrapped (:mod:`.keys`).
"""

from __future__ import annotations

from ..errors import StoreError

#: ``erase_meta.schema_version`` of the current layout.
SCHEMA_VERSION = 1
FORMAT_NAME = "erase-example-store-postgres"
TABLES = ("erase_meta", "erase_config", "erase_state", "erase_keys", "erase_examples", "erase_keywraps", "erase_changes",
          "erase_audit", "erase_image")

DDL = (
    "CREATE TABLE erase_meta (key text PRIMARY KEY, value text NOT NULL)",
    "CREATE TABLE erase_config (k int PRIMARY KEY CHECK (k = 0), json text NOT NULL)",
    # one row: the committed version, the next row number (never reused), the change log's
    # floor, the vector width, the sealed row-set record, the shred-pending flag with the
    # transaction id of the forget that raised it, and the posted selection (sealed, see board.py)
    "CREATE TABLE erase_state (k int PRIMARY KEY CHECK (k = 0), version bigint NOT NULL, next_row bigint NOT NULL,"
    " log_floor bigint NOT NULL, dim int, rows_digest text NOT NULL, shred_pending boolean NOT NULL,"
    " shred_xid text, board bytea)",
    # bucket keys (the audit secret as bucket -1, the board's key as -2, the open image's as -3):
    # the only table the shred step rewrites
    "CREATE TABLE erase_keys (bucket int PRIMARY KEY, key bytea NOT NULL)",
    "ALTER TABLE erase_keys ALTER COLUMN key SET STORAGE PLAIN",
    # ANALYZE copies sample values into pg_statistic, where no shred step reaches: never of a key
    # (the residue test found bucket keys in pg_statistic's TOAST table before this)
    "ALTER TABLE erase_keys ALTER COLUMN key SET STATISTICS 0",
    # sealed rows: inserted and deleted, never updated
    "CREATE TABLE erase_examples (row bigint PRIMARY KEY, blob bytea NOT NULL)",
    "ALTER TABLE erase_examples ALTER COLUMN blob SET STATISTICS 0",
    # each row's key wrapped under its bucket's key: narrow, so that re-wrapping a bucket
    # (contiguous row numbers) rewrites a page or two
    "CREATE TABLE erase_keywraps (row bigint PRIMARY KEY, wrapped bytea NOT NULL)",
    "ALTER TABLE erase_keywraps ALTER COLUMN wrapped SET STATISTICS 0",
    "CREATE TABLE erase_changes (seq bigint PRIMARY KEY, op smallint NOT NULL, row bigint NOT NULL)",
    "CREATE TABLE erase_audit (seq bigint PRIMARY KEY, entry text NOT NULL, prev text NOT NULL, hash text NOT NULL)",
    # the open image (..image: sealed under the key in erase_keys row -3, which any deleting
    # transaction deletes); at most one row
    "CREATE TABLE erase_image (k int PRIMARY KEY CHECK (k = 0), version bigint NOT NULL, blob bytea NOT NULL)",
    "ALTER TABLE erase_image ALTER COLUMN blob SET STATISTICS 0",
)


def present(conn) -> list[str]:
    """The store's table names that exist in the connection's schema."""
    return [name for name in TABLES
            if conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()[0]]


def check(conn, where: str) -> dict[str, str]:
    """The ``erase_meta`` of a valid store of this layout; :class:`StoreError` otherwise."""
    found = present(conn)
    if not found:
        raise StoreError(f"no example store in {where} (no erase_* tables in its schema)")
    if "erase_meta" not in found:
        raise StoreError(f"{where} has tables named {', '.join(found)} but is not an ERASE example store")
    try:
        meta = dict(conn.execute("SELECT key, value FROM erase_meta WHERE key NOT LIKE 'note:%'").fetchall())
    except Exception:  # noqa: BLE001 - a foreign erase_meta with other columns
        raise StoreError(f"{where} has a table erase_meta that is not an ERASE example store's") from None
    if meta.get("format") != FORMAT_NAME:
        raise StoreError(f"{where} has tables named erase_* but is not an ERASE example store (no format marker)")
    version = meta.get("schema_version", "")
    if version != str(SCHEMA_VERSION):
        raise StoreError(f"{where} has example-store layout version {version}; this code reads version {SCHEMA_VERSION}")
    missing = [t for t in TABLES if t not in found]
    if missing:
        raise StoreError(f"{where} is not a valid ERASE example store (missing tables {missing})")
    return meta
