"""The payload JSON texts of an index's examples, by id.

An index opened from a store's open image (:mod:`erase_core.storage.image`) does not hold the
payloads at first: the image leaves them out (they can be kilobytes each, and a handle returns
only a few), so each is read from its row the first time it is needed and kept from then on.
A payload whose row a concurrent forget deleted raises :class:`~erase_core.storage.errors.
RowGoneError`; the index then catches up and answers again.
"""

from __future__ import annotations

from typing import Callable, Iterable

from ._validation import ERASEError

__all__ = ["PayloadTexts"]

#: Reads the payload texts of store rows: ``fetch(rows) -> {row: text}``.
Fetch = Callable[[list[int]], dict[int, str]]


class PayloadTexts:
    """A mapping ``id -> payload JSON text`` (the operations the index uses)."""

    __slots__ = ("_texts", "_row_of", "_fetch")

    def __init__(self) -> None:
        self._texts: dict[str, str] = {}
        self._row_of: dict[str, int] = {}  # ids whose payload is still only in the store
        self._fetch: Fetch | None = None

    def set_deferred(self, ids: list[str], rows: list[int], fetch: Fetch) -> None:
        """The payloads of ``ids`` are in store rows ``rows``, read by ``fetch`` when needed."""
        self._row_of = dict(zip(ids, rows))
        self._fetch = fetch

    def _read(self, rows: list[int]) -> dict[int, str]:
        if self._fetch is None:  # rows are recorded only with the fetch that reads them
            raise ERASEError("deferred payloads without a store to read them from")
        return self._fetch(rows)

    def __getitem__(self, example_id: str) -> str:
        text = self._texts.get(example_id)
        if text is None:
            row = self._row_of[example_id]  # KeyError for an unknown id, as a dict
            text = self._read([row])[row]
            del self._row_of[example_id]
            self._texts[example_id] = text
        return text

    def get_many(self, ids: list[str]) -> list[str]:
        """The texts of ``ids``, the ones still in the store read in one fetch."""
        missing = [i for i in ids if i not in self._texts]
        if missing:
            rows = [self._row_of[i] for i in missing]  # KeyError for an unknown id, as a dict
            got = self._read(rows)
            for i, row in zip(missing, rows):
                self._texts[i] = got[row]
                del self._row_of[i]
        return [self._texts[i] for i in ids]

    def load_all(self) -> None:
        """Read every deferred payload now (a copy or rebuild of the whole pool needs them)."""
        self.get_many(list(self._row_of))

    def __contains__(self, example_id) -> bool:
        return example_id in self._texts or example_id in self._row_of

    def __len__(self) -> int:
        return len(self._texts) + len(self._row_of)

    def __setitem__(self, example_id: str, text: str) -> None:
        self._row_of.pop(example_id, None)
        self._texts[example_id] = text

    def update(self, pairs: Iterable[tuple[str, str]]) -> None:
        if self._row_of:
            for example_id, text in pairs:
                self[example_id] = text
        else:
            self._texts.update(pairs)

    def __delitem__(self, example_id: str) -> None:
        if self._texts.pop(example_id, None) is None:
            del self._row_of[example_id]  # KeyError for an unknown id, as a dict
