"""The payload JSON texts of an index's examples, by id.

An index opened from a store's open image (:mod:`erase_core.storage.image`) keeps the image's
payload bytes as they are and decodes a payload when it is read (select and get read k of
them), instead of building 10^5 strings at open. Forgetting such an example zeroes its bytes
in place, so no copy of it stays in the handle's memory either.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

__all__ = ["PayloadTexts"]


class PayloadTexts:
    """A mapping ``id -> payload JSON text`` (the operations the index uses)."""

    __slots__ = ("_texts", "_base_of", "_offsets", "_bytes")

    def __init__(self) -> None:
        self._texts: dict[str, str] = {}
        self._base_of: dict[str, int] = {}
        self._offsets: list[int] = []
        self._bytes: np.ndarray | None = None

    def set_base(self, ids: list[str], offsets: np.ndarray, data: np.ndarray) -> None:
        """Payloads of ``ids`` are ``data[offsets[j]:offsets[j + 1]]`` (UTF-8; ``data`` writable)."""
        self._base_of = dict(zip(ids, range(len(ids))))
        self._offsets = offsets.tolist()
        self._bytes = data

    def __getitem__(self, example_id: str) -> str:
        text = self._texts.get(example_id)
        if text is not None:
            return text
        j = self._base_of[example_id]
        return self._bytes[self._offsets[j] : self._offsets[j + 1]].tobytes().decode("utf-8")

    def __contains__(self, example_id) -> bool:
        return example_id in self._texts or example_id in self._base_of

    def __len__(self) -> int:
        return len(self._texts) + len(self._base_of)

    def __setitem__(self, example_id: str, text: str) -> None:
        if example_id in self._base_of:
            self._drop_base(example_id)
        self._texts[example_id] = text

    def update(self, pairs: Iterable[tuple[str, str]]) -> None:
        if self._base_of:
            for example_id, text in pairs:
                self[example_id] = text
        else:
            self._texts.update(pairs)

    def __delitem__(self, example_id: str) -> None:
        if example_id in self._texts:
            del self._texts[example_id]
        else:
            self._drop_base(example_id)

    def _drop_base(self, example_id: str) -> None:
        j = self._base_of.pop(example_id)  # KeyError for an unknown id, as a dict
        self._bytes[self._offsets[j] : self._offsets[j + 1]] = 0
        if not self._base_of:
            self._bytes, self._offsets = None, []
