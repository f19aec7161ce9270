"""``ForgettingCache``: a LangChain LLM cache whose entries are forgotten with the examples in them.

A forget removes an example from the selector exactly, but an LLM response cache keyed by the
prompt still holds every prompt that contained it (and the generation derived from it). This
wrapper around any :class:`~langchain_core.caches.BaseCache` remembers, for every entry written
through it, which examples of the watched selectors/retrievers its prompt contains, and drops
those entries when the examples are forgotten.

How it knows which examples a prompt contains: a watched source (an
:class:`~erase_langchain.ERASEExampleSelector` with the prompt that renders its examples, or an
:class:`~erase_langchain.ERASERetriever`) reports every selection to the cache, with ids. The
cache renders each selected example as the prompt will (``example_prompt.format(...)`` exactly as
``FewShotPromptTemplate`` does; each message's text for chat example prompts; ``page_content``
for documents), and a prompt *contains* the example when it contains that rendering (for chat
prompts: every message text of it, raw or JSON-escaped, as chat models' cache keys are JSON).
The renderings are kept only as keyed hashes (a random per-cache key), never as text: the
hashes of forgotten examples stay behind as tombstones, so that a generation in flight during
a forget is not cached, without the cache keeping a copy of what was forgotten.

``BaseCache`` has no per-entry delete, so an entry is dropped by rebuilding the inner cache:
the surviving entries written through this wrapper are read back, the inner cache is cleared
(``inner.clear()``) and they are written again. Whatever else the inner cache held goes too.

Usage::

    cache = ForgettingCache(SQLiteCache("llm_cache.db"))   # or ForgettingCache() (in memory)
    cache.watch(few_shot_prompt)             # a FewShotPromptTemplate over an ERASEExampleSelector
    set_llm_cache(cache)                     # or llm = FakeListLLM(..., cache=cache)
    ...
    selector.forget(subject="customer-4711") # the entries whose prompts held those examples are gone

See docs/langchain.md ("Caches forget too") for exactly what is and is not covered.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from typing import Any

from langchain_core.caches import RETURN_VAL_TYPE, BaseCache, InMemoryCache
from langchain_core.prompts import StringPromptTemplate
from langchain_core.runnables.config import run_in_executor

from erase_core import ERASEError, SelectedExample

__all__ = ["ForgettingCache"]

_ANCHOR = 16  # characters: a needle at least this long is located by its first _ANCHOR characters

#: A text as kept by the cache: (length in characters, keyed hash of its first ``_ANCHOR``
#: characters or None when shorter, keyed hash of the whole text).
Needle = tuple[int, "bytes | None", bytes]


class _NeedleIndex:
    """Keyed hashes of texts, and which owners (examples, tombstones) they belong to; finds the
    ones a prompt contains without keeping the texts themselves."""

    def __init__(self) -> None:
        self._key = os.urandom(32)
        self._owners: dict[Needle, set] = {}
        self._by_anchor: dict[bytes, set[Needle]] = {}
        self._short: dict[int, set[bytes]] = {}

    def _hash(self, text: str) -> bytes:
        return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), key=self._key, digest_size=16).digest()

    def needle(self, text: str) -> Needle:
        n = len(text)
        return n, (self._hash(text[:_ANCHOR]) if n >= _ANCHOR else None), self._hash(text)

    def add(self, needle: Needle, owner: Any) -> None:
        owners = self._owners.get(needle)
        if owners is None:
            owners = self._owners[needle] = set()
            n, anchor, full = needle
            if anchor is None:
                self._short.setdefault(n, set()).add(full)
            else:
                self._by_anchor.setdefault(anchor, set()).add(needle)
        owners.add(owner)

    def discard(self, needle: Needle, owner: Any) -> None:
        owners = self._owners.get(needle)
        if owners is None:
            return
        owners.discard(owner)
        if owners:
            return
        del self._owners[needle]
        n, anchor, full = needle
        if anchor is None:
            self._short[n].discard(full)
            if not self._short[n]:
                del self._short[n]
        else:
            self._by_anchor[anchor].discard(needle)
            if not self._by_anchor[anchor]:
                del self._by_anchor[anchor]

    def find(self, prompt: str) -> tuple[set[Needle], set]:
        """The needles ``prompt`` contains, and their owners."""
        hits: set[Needle] = set()
        size, h = len(prompt), self._hash
        if self._by_anchor:
            for p in range(size - _ANCHOR + 1):
                group = self._by_anchor.get(h(prompt[p : p + _ANCHOR]))
                if group:
                    for needle in group:
                        n = needle[0]
                        if needle not in hits and p + n <= size and h(prompt[p : p + n]) == needle[2]:
                            hits.add(needle)
        for n, hashes in self._short.items():
            for p in range(size - n + 1):
                full = h(prompt[p : p + n])
                if full in hashes:
                    hits.add((n, None, full))
        owners: set = set()
        for needle in hits:
            owners |= self._owners[needle]
        return hits, owners


def _variants(text: str) -> list[str]:
    """A text as it may appear in a cache key: raw (string prompts) or JSON-escaped (chat models
    key their cache by the JSON of the messages)."""
    return list(dict.fromkeys([text, json.dumps(text)[1:-1], json.dumps(text, ensure_ascii=False)[1:-1]]))


def _message_texts(message: Any) -> list[str]:
    content = message.content
    if isinstance(content, str):
        return [content]
    out = []
    for block in content or ():
        if isinstance(block, str):
            out.append(block)
        elif isinstance(block, dict) and isinstance(block.get("text"), str):
            out.append(block["text"])
    return out


class _Watch:
    """One watched selector (with the prompt that renders its examples) or retriever."""

    def __init__(self, cache: "ForgettingCache", source: Any, example_prompt: Any, number: int) -> None:
        self.cache, self.source, self.example_prompt, self.number = cache, source, example_prompt, number
        self.index = source.index
        self.token: str | None = None  # the index digest when this watch last checked for forgets
        self.parts: dict[str, frozenset] = {}  # live example id -> its rendering (keyed hashes)

    # called by the source
    def on_selected(self, source: Any, selected: list[SelectedExample]) -> None:
        self.cache._selected(self, source, selected)

    def on_forgot(self, source: Any) -> None:
        self.cache.purge_forgotten()

    def texts(self, source: Any, item: SelectedExample) -> list[str]:
        """How ``item`` appears in a prompt: the texts that must all occur in it."""
        if self.example_prompt is None:  # a retriever: documents are put in prompts by their text
            return [item.payload["page_content"]]
        example = source._project([item])[0]
        prompt = self.example_prompt
        try:
            values = {key: example[key] for key in prompt.input_variables}
        except KeyError as exc:
            raise ERASEError(
                f"ForgettingCache: the watched example_prompt needs {exc.args[0]!r}, which selected example "
                f"{item.id!r} lacks; watch the prompt template that actually renders this selector's examples"
            ) from None
        if isinstance(prompt, StringPromptTemplate):
            return [prompt.format(**values)]
        return [t for message in prompt.format_messages(**values) for t in _message_texts(message)]


class ForgettingCache(BaseCache):
    """An LLM cache (around any ``BaseCache``) that forgets what the watched selectors forget.

    ``inner``: the cache that stores the generations (default: a new ``InMemoryCache``).
    ``clear_inner``: clear ``inner`` now (default). Entries already in it were not written
    through this wrapper, so which examples their prompts contain is unknown and no forget
    could remove them; pass ``False`` only for a cache that holds nothing derived from
    forgettable examples.

    Call :meth:`watch` for every ERASE selector/retriever whose output reaches the LLM, before
    serving. Then, for every entry written through this cache whose prompt contains a watched
    example (as its prompt template renders it):

    * a forget through a watched object (``forget(ids)``, ``forget(subject=)``,
      ``forget_where``, async twins) drops the entry from ``inner`` before it returns;
    * a forget anywhere else on the same engine or store (another selector object, another
      handle or process on the same ``persist_path``, the ``erase`` CLI) is noticed at this
      cache's next ``lookup``/``update``/``clear``/:meth:`purge_forgotten`, which drops the entry before
      doing anything else: no lookup that starts after the forget committed returns it;
    * a generation whose prompt contains an example forgotten meanwhile (an LLM call in flight
      during the forget) is not stored.

    Not covered: entries written to ``inner`` by anything but this wrapper, prompts that render
    an example differently from the watched template, and a forget followed by re-adding the
    same id with the same content elsewhere before this cache looked (the content is live again).
    Whether a dropped entry's bytes leave the disk is up to ``inner.clear()`` (for SQLite:
    ``PRAGMA secure_delete=ON``, or ``VACUUM``).
    """

    def __init__(self, inner: BaseCache | None = None, *, clear_inner: bool = True) -> None:
        self.inner: BaseCache = InMemoryCache() if inner is None else inner
        if not isinstance(self.inner, BaseCache):
            raise TypeError(f"inner must be a langchain_core BaseCache, got {type(self.inner).__name__}")
        if clear_inner:
            self.inner.clear()
        self._lock = threading.RLock()
        self._watches: list[_Watch] = []
        self._needles = _NeedleIndex()
        self._entries: dict[tuple[str, str], frozenset] = {}  # (prompt, llm_string) -> live owners in it
        self._by_owner: dict[tuple, set[tuple[str, str]]] = {}
        self._tombs: dict[int, frozenset] = {}  # renderings of forgotten examples (keyed hashes only)
        self._tomb_of: dict[frozenset, int] = {}

    # ------------------------------------------------------------------ watching
    def watch(self, source: Any, example_prompt: Any = None) -> "ForgettingCache":
        """Track the examples ``source`` puts in prompts; returns this cache.

        ``source``: a ``FewShotPromptTemplate`` / ``FewShotChatMessagePromptTemplate`` whose
        ``example_selector`` is an ``ERASEExampleSelector`` (its ``example_prompt`` says how
        examples are rendered); or an ``ERASEExampleSelector`` with ``example_prompt=`` (the
        template its prompt renders each example with); or an ``ERASERetriever`` (documents
        are recognised by their ``page_content``)."""
        from .example_selector import ERASEExampleSelector
        from .retriever import ERASERetriever

        if hasattr(source, "example_selector") and hasattr(source, "example_prompt"):
            if example_prompt is not None:
                raise ERASEError("example_prompt= is taken from the few-shot prompt template; do not give it too")
            if not isinstance(source.example_selector, ERASEExampleSelector):
                raise ERASEError(
                    "this few-shot prompt has no ERASEExampleSelector (a fixed examples=[...] list cannot forget)"
                )
            source, example_prompt = source.example_selector, source.example_prompt
        if isinstance(source, ERASEExampleSelector):
            if example_prompt is None:
                raise ERASEError(
                    "watching a selector needs example_prompt=, the template each example is rendered with "
                    "(or watch the FewShotPromptTemplate itself)"
                )
        elif isinstance(source, ERASERetriever):
            if example_prompt is not None:
                raise ERASEError("a retriever's documents are recognised by page_content; example_prompt does not apply")
        else:
            raise TypeError(f"cannot watch {type(source).__name__}: give an ERASE selector, retriever or few-shot prompt")
        with self._lock:
            for w in self._watches:
                if w.source is source and w.example_prompt is example_prompt:
                    return self
            watch = _Watch(self, source, example_prompt, len(self._watches))
            self._watches.append(watch)
            source._add_listener(watch)
        return self

    def _selected(self, watch: _Watch, source: Any, selected: list[SelectedExample]) -> None:
        renderings = [(item.id, self._rendering(watch.texts(source, item))) for item in selected]
        with self._lock:
            for example_id, parts in renderings:
                old = watch.parts.get(example_id)
                if old == parts:
                    continue
                if old is not None:  # ids are unique in a pool: the old content under this id was forgotten
                    self._bury(watch, [example_id])
                if parts:
                    self._register(watch, example_id, parts)
            # selected just before a forget committed: bury now (a later forget changes the digest)
            self._bury(watch, [i for i, _ in renderings if i in watch.parts and i not in watch.index])

    def _rendering(self, texts: list[str]) -> frozenset:
        """Keyed hashes of an example's texts (all must occur): per text, the set of its variants
        (any may occur). Empty texts are no evidence and are left out."""
        return frozenset(frozenset(self._needles.needle(v) for v in _variants(t)) for t in texts if t)

    def _register(self, watch: _Watch, example_id: str, parts: frozenset) -> None:
        watch.parts[example_id] = parts
        owner = ("live", watch.number, example_id)
        for part in parts:
            for needle in part:
                self._needles.add(needle, owner)

    def _bury(self, watch: _Watch, ids: list[str]) -> None:
        """``ids`` were forgotten: keep their renderings as tombstones and drop their entries."""
        dropped: set[tuple[str, str]] = set()
        for example_id in ids:
            parts = watch.parts.pop(example_id, None)
            if parts is None:
                continue
            owner = ("live", watch.number, example_id)
            for part in parts:
                for needle in part:
                    self._needles.discard(needle, owner)
            if parts not in self._tomb_of:
                tomb = len(self._tombs)
                self._tombs[tomb], self._tomb_of[parts] = parts, tomb
                for part in parts:
                    for needle in part:
                        self._needles.add(needle, ("dead", tomb))
            dropped |= self._by_owner.pop(owner, set())
        self._drop_entries(dropped)

    # ------------------------------------------------------------------ keeping up with forgets
    def purge_forgotten(self) -> None:
        """Drop the entries of examples forgotten anywhere (other objects, handles, processes)
        since the last check. Every ``lookup``/``update``/``clear`` does this first."""
        with self._lock:
            for watch in self._watches:
                token = watch.index.digest()  # catches up with the store; changes on every forget
                if token != watch.token:
                    gone = [i for i in watch.parts if i not in watch.index]
                    if gone:
                        self._bury(watch, gone)
                    watch.token = token

    async def apurge_forgotten(self) -> None:
        """Async :meth:`purge_forgotten` (runs in an executor)."""
        await run_in_executor(None, self.purge_forgotten)

    def _contained(self, prompt: str) -> tuple[set, bool]:
        """The live examples ``prompt`` contains, and whether it contains a forgotten one."""
        hits, owners = self._needles.find(prompt)
        live, live_parts, dead = set(), set(), []
        for owner in owners:
            parts = self._watches[owner[1]].parts[owner[2]] if owner[0] == "live" else self._tombs[owner[1]]
            if all(part & hits for part in parts):
                if owner[0] == "live":
                    live.add(owner)
                    live_parts.add(parts)
                else:
                    dead.append(parts)
        # a forgotten rendering that is also a live example's (a duplicate) is live content
        return live, any(parts not in live_parts for parts in dead)

    def _drop_entries(self, keys: set[tuple[str, str]]) -> None:
        """Remove entries from ``inner``: ``BaseCache`` has no delete, so read back the others,
        clear it, and write them again."""
        keys = {key for key in keys if key in self._entries}
        if not keys:
            return
        survivors = []
        for key in self._entries:
            if key not in keys:
                value = self.inner.lookup(*key)
                if value is not None:
                    survivors.append((key, value))
        self.inner.clear()
        for key, value in survivors:
            self.inner.update(key[0], key[1], value)
        kept = {key for key, _ in survivors}
        for key in [key for key in self._entries if key not in kept]:
            self._untrack(key)

    def _untrack(self, key: tuple[str, str]) -> None:
        for owner in self._entries.pop(key, ()):
            keys = self._by_owner.get(owner)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_owner[owner]

    # ------------------------------------------------------------------ BaseCache
    def lookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        with self._lock:
            self.purge_forgotten()
            if self._tombs and self._contained(prompt)[1]:
                return None
            return self.inner.lookup(prompt, llm_string)

    def update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        with self._lock:
            self.purge_forgotten()
            live, forgotten = self._contained(prompt)
            if forgotten:
                return  # the prompt holds an example forgotten while the LLM ran: do not keep it
            self.inner.update(prompt, llm_string, return_val)
            key = (prompt, llm_string)
            self._untrack(key)
            self._entries[key] = frozenset(live)
            for owner in live:
                self._by_owner.setdefault(owner, set()).add(key)

    def clear(self, **kwargs: Any) -> None:
        with self._lock:
            self.purge_forgotten()
            self.inner.clear(**kwargs)
            self._entries.clear()
            self._by_owner.clear()

    async def alookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        return await run_in_executor(None, self.lookup, prompt, llm_string)

    async def aupdate(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        await run_in_executor(None, self.update, prompt, llm_string, return_val)

    async def aclear(self, **kwargs: Any) -> None:
        await run_in_executor(None, self.clear, **kwargs)

    # ------------------------------------------------------------------ inspection
    def __len__(self) -> int:
        """Entries written through this cache and still held."""
        with self._lock:
            return len(self._entries)

    def holds(self, example_id: str) -> int:
        """How many held entries contain the (live) example ``example_id`` of any watched source."""
        with self._lock:
            return sum(len(keys) for owner, keys in self._by_owner.items() if owner[2] == example_id)

    def __repr__(self) -> str:
        return f"ForgettingCache(inner={type(self.inner).__name__}, entries={len(self._entries)}, watches={len(self._watches)})"
