"""The deletion audit log: proof that a request was honoured, without a copy of what was deleted.

Every forget appends one entry: when, what kind of request (ids, a subject, a metadata filter),
how many examples went, the pool digest before and after, and whether the clustering was
recomputed. Ids, subjects and filters appear only as keyed hashes (HMAC-SHA256 under a
per-store secret), so the log answers "was subject X forgotten, and when?" for someone who
names X, and tells nothing to someone who does not.

Entries are hash-chained: each stores the SHA-256 of the previous entry's hash and its own
canonical JSON, so editing, reordering or deleting an entry breaks the chain from there on.
(Cutting entries off the end leaves a valid shorter chain: keep the head hash that
:func:`check_chain` returns somewhere else to detect that.)

In a store the log is a table of the store's database, written in the same transaction as
the forget it records: a forget and its entry commit together or not at all.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass

GENESIS = "0" * 64


def keyed(secret: bytes, kind: str, value: str) -> str:
    """The keyed hash of one id, subject or filter (hex; ``kind`` separates the namespaces)."""
    return hmac.new(secret, f"{kind}\0{value}".encode("utf-8"), hashlib.sha256).hexdigest()


def canonical_filter(where: dict) -> str:
    return json.dumps(where, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def make_entry(secret: bytes, *, request: str, ids, subjects, subject: str | None = None, where: dict | None = None,
               digest_before: str, digest_after: str, recomputed: bool, version: int) -> dict:
    """One log entry (JSON-ready); nothing in it is forgotten content."""
    return {
        "time": _utc_now(),
        "request": request,
        "subject": None if subject is None else keyed(secret, "subject", subject),
        "filter": None if where is None else keyed(secret, "filter", canonical_filter(where)),
        "count": len(ids),
        "ids": sorted([keyed(secret, "id", i) for i in ids]),
        "subjects": sorted({keyed(secret, "subject", s) for s in set(subjects) if s is not None}),
        "digest_before": digest_before,
        "digest_after": digest_after,
        "recomputed": bool(recomputed),
        "version": int(version),
    }


_NOW: tuple[int | None, str] = (None, "")


def _utc_now() -> str:
    """The current UTC second as the log writes it (formatted once per second)."""
    global _NOW
    now = int(time.time())
    cached = _NOW
    if cached[0] != now:
        cached = _NOW = (now, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)))
    return cached[1]


def chain_hash(prev: str, entry_json: str) -> str:
    return hashlib.sha256(f"{prev}\n{entry_json}".encode("utf-8")).hexdigest()


def entry_json(entry: dict) -> str:
    return json.dumps(entry, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class ChainCheck:
    ok: bool
    entries: int
    head: str
    first_bad: int | None  # sequence number of the first entry that does not verify

    def __bool__(self) -> bool:
        return self.ok


def check_chain(rows) -> ChainCheck:
    """Verify ``(seq, entry_json, prev, hash)`` rows in order."""
    prev = GENESIS
    count = 0
    for seq, text, stored_prev, stored_hash in rows:
        if stored_prev != prev or chain_hash(prev, text) != stored_hash:
            return ChainCheck(False, count, prev, seq)
        try:
            json.loads(text)
        except ValueError:
            return ChainCheck(False, count, prev, seq)
        prev = stored_hash
        count += 1
    return ChainCheck(True, count, prev, None)


def matches(secret: bytes, entry: dict, *, example_id: str | None = None, subject: str | None = None,
            where: dict | None = None) -> bool:
    """Does this entry record forgetting ``example_id`` / ``subject`` / the filter ``where``?"""
    if example_id is not None and keyed(secret, "id", example_id) in entry.get("ids", ()):
        return True
    if subject is not None:
        h = keyed(secret, "subject", subject)
        if entry.get("subject") == h or h in entry.get("subjects", ()):
            return True
    if where is not None and entry.get("filter") == keyed(secret, "filter", canonical_filter(where)):
        return True
    return False


class MemoryAuditLog:
    """The same log for an index without a store (kept in memory, same chain).

    Entries are chained when the log is read (:attr:`rows`), not when a forget appends one:
    an entry holds only keyed hashes and digests, so keeping it as a dict until then keeps
    nothing forgotten, and takes its canonical JSON and chain hash off the forget's path."""

    def __init__(self, secret: bytes):
        self.secret = secret
        self._rows: list[tuple[int, str, str, str]] = []
        self._pending: list[dict] = []

    def append(self, entry: dict) -> None:
        self._pending.append(entry)

    @property
    def rows(self) -> list[tuple[int, str, str, str]]:
        """``(seq, entry_json, prev, hash)`` for every entry, in order."""
        for entry in self._pending:
            prev = self._rows[-1][3] if self._rows else GENESIS
            text = entry_json(entry)
            self._rows.append((len(self._rows) + 1, text, prev, chain_hash(prev, text)))
        self._pending.clear()
        return self._rows

    @rows.setter
    def rows(self, rows: list[tuple[int, str, str, str]]) -> None:
        self._rows, self._pending = list(rows), []
