"""The pool: the rows an index holds in memory (ids, vectors, payloads, attributes, hashes).

Rows are kept in slots ``0..n-1`` of one float32 array (a removed row's slot is taken by the
last row), with the order-free multiset hash of the pool kept up to date row by row. With a
store, each row also has the store's row number. Nothing here knows about clustering or stores.
"""

from __future__ import annotations

import numpy as np

from ..filters import AttributeIndex, parse_attrs
from ..hashing import MultisetHash
from ..payload_texts import PayloadTexts


class Pool:
    """The examples in memory, by slot and by id."""

    def __init__(self, dim: int | None = None) -> None:
        self.dim = dim
        self.vectors = np.zeros((0, 0 if dim is None else dim), dtype=np.float32)
        self.ids: list[str] = []
        self.slot_of: dict[str, int] = {}
        self.payload_json = PayloadTexts()
        self.attrs_json: dict[str, str] = {}  # only examples with a subject or metadata
        self.attributes = AttributeIndex(self.slot_of)
        self.example_hashes: dict[str, int] = {}
        self.hash = MultisetHash()
        self._lanes = np.zeros((0, 2), dtype=np.uint64)  # by slot: each example's lane terms
        self.row_of: dict[str, int] = {}  # store row numbers
        self.id_of_row: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, example_id) -> bool:
        return example_id in self.slot_of

    def append(self, ids: list[str], payload_jsons: list[str] | None, unit: np.ndarray, hashes,
               rows: list[int] | None = None, attrs: list[str] | None = None, *, adopt: bool = False) -> int:
        """Append already-normalised rows; returns the first new slot. ``payload_jsons`` None:
        they are already in :attr:`payload_json` (an open image). ``adopt``: an empty pool may
        keep ``unit`` itself as its vector array (an open image's decrypted array, which nothing
        else holds) instead of copying it."""
        n0 = len(self.ids)
        adopted = (adopt and n0 == 0 and unit.dtype == np.float32 and unit.flags.c_contiguous
                   and unit.flags.writeable and len(ids) > 0)
        if adopted:
            self.dim = unit.shape[1]
            self.vectors = unit
        elif self.vectors.shape[1] != unit.shape[1]:
            self.dim = unit.shape[1]
            self.vectors = np.zeros((max(16, len(ids)), self.dim), dtype=np.float32)
        need = n0 + len(ids)
        if need > self.vectors.shape[0]:
            grown = np.zeros((max(need, 2 * self.vectors.shape[0]), self.vectors.shape[1]), dtype=np.float32)
            grown[:n0] = self.vectors[:n0]
            self.vectors = grown
        if not adopted:
            self.vectors[n0:need] = unit
        if need > self._lanes.shape[0]:
            lanes = np.zeros((self.vectors.shape[0], 2), dtype=np.uint64)
            lanes[:n0] = self._lanes[:n0]
            self._lanes = lanes
        # bulk dict updates: open adds 10^5 rows at once
        self.slot_of.update(zip(ids, range(n0, need)))
        if payload_jsons is not None:
            self.payload_json.update(zip(ids, payload_jsons))
        self.example_hashes.update(zip(ids, hashes.tolist() if isinstance(hashes, np.ndarray) else hashes))
        if rows is not None:
            self.row_of.update(zip(ids, rows))
            self.id_of_row.update(zip(rows, ids))
        if attrs is not None:
            for i, a in zip(ids, attrs):
                if a:
                    self.attrs_json[i] = a
                    self.attributes.add(i, *parse_attrs(a))
        self._lanes[n0:need] = MultisetHash.lanes_each(np.array(hashes, dtype=np.uint64))
        self.hash.add_lanes(self._lanes[n0:need])
        self.ids.extend(ids)
        return n0

    def drop(self, ids: list[str]) -> None:
        """Remove rows (the last row moves into each freed slot)."""
        for i in (ids if len(ids) == 1 else sorted(ids, key=self.slot_of.__getitem__, reverse=True)):
            s = self.slot_of.pop(i)
            last = len(self.ids) - 1
            self.hash.remove_lanes(self._lanes[s])
            if s != last:
                self.vectors[s] = self.vectors[last]
                self._lanes[s] = self._lanes[last]
                self.ids[s] = self.ids[last]
                self.slot_of[self.ids[s]] = s
            self.ids.pop()
            self.vectors[last] = 0.0
            self._lanes[last] = 0
            del self.payload_json[i]
            if self.attrs_json.pop(i, None) is not None:
                self.attributes.remove(i)
            row = self.row_of.pop(i, None)
            if row is not None:
                del self.id_of_row[row]
            del self.example_hashes[i]

    @property
    def active(self) -> np.ndarray:
        """The vectors of slots ``0..n-1`` (a view)."""
        return self.vectors[: len(self.ids)]

    def vectors_of(self, ids: list[str]) -> np.ndarray:
        """The stored vectors of ``ids``, in that order (a copy)."""
        if not ids:
            return np.zeros((0, self.dim or 0), dtype=np.float32)
        return self.vectors[np.array([self.slot_of[i] for i in ids], dtype=np.int64)]

    def subjects_of(self, ids: list[str]) -> list[str | None]:
        return [self.attributes.subject_of(i) for i in ids]

    def digest_text(self) -> str:
        """The size and multiset hash of the rows, as the index digest hashes them."""
        return f"{len(self.ids)}:{self.hash.hexdigest()}"

    def encoded(self, order: list[str]) -> tuple[np.ndarray, list[str], list[str]]:
        """``(vectors, payload JSON, attributes JSON)`` of ``order`` (every payload read)."""
        self.payload_json.load_all()
        return self.vectors_of(order), [self.payload_json[i] for i in order], [self.attrs_json.get(i, "") for i in order]
