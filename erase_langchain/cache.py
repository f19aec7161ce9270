"""``ForgettingCache``: a LangChain LLM cache whose entries are forgotten with the examples in them.

A forget removes an example from the selector exactly, but an LLM response cache keyed by the
prompt still holds every prompt that contained it (and the generation derived from it). This
wrapper around any :class:`~langchain_core.caches.BaseCache` records, for every entry written
through it, the ids of the watched examples its prompt contains, and drops those entries when
any of them is forgotten.

How it works:

* **Forgets** reach the cache through the engine's forget hook
  (:meth:`erase_core.ExampleIndex.add_forget_listener`): every forget, forget by subject or
  filter, ``delete`` and upsert-replacement through any object over a watched engine (an ERASE
  selector, retriever or vector store, a stock selector or ``VectorStoreRetriever`` over an
  ``ERASEVectorStore``) drops the entries before it returns. Forgets by another handle or
  process on the same store are seen at the next ``lookup``/``update`` (the store's version).
* **Which examples a prompt contains** is decided once per entry, when it is written
  (``update``, once per generation): the objects over a watched engine report every item they
  hand out (:mod:`erase_langchain._handouts`); the cache renders each one as the prompt does
  (``example_prompt`` for few-shot prompts, ``page_content`` for documents) and keeps the
  rendering as keyed hashes (a random per-cache key), never as text. ``update`` looks for those
  renderings in the prompt (anchored hashes every 16 characters), so the entry is keyed by
  the ids that produced it.
* **Lookups** cost what the wrapped cache costs (plus, for a watched store, the engine's
  check of the store's version): nothing is hashed or scanned.

A forgotten example's rendering stays behind as keyed hashes (a tombstone), so a generation in
flight during the forget, whose prompt holds it, is not stored.

``BaseCache`` has no per-entry delete, so an entry is dropped by rebuilding the inner cache:
the surviving entries written through this wrapper are read back, ``inner.clear()`` runs and
they are written again. Entries the wrapper did not write do not survive that.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import threading
from typing import Any, Callable, Sequence

from langchain_core.caches import RETURN_VAL_TYPE, BaseCache, InMemoryCache
from langchain_core.example_selectors import MaxMarginalRelevanceExampleSelector, SemanticSimilarityExampleSelector
from langchain_core.prompts import StringPromptTemplate
from langchain_core.runnables.config import run_in_executor
from langchain_core.vectorstores import VectorStoreRetriever

from erase_core import ERASEError, ExampleIndex, UnknownIdError

from . import _handouts

__all__ = ["ForgettingCache"]

_STRIDE = 16  # the prompt is hashed at every _STRIDE-th position, in windows of _STRIDE characters
_LONG = 2 * _STRIDE - 1  # a text this long holds a whole window at a multiple of _STRIDE wherever it starts

#: A text as kept by the cache: (length in characters, keyed hash of the whole text, keyed
#: hashes of its windows: at offsets 0..15, or the whole text's when shorter than ``_LONG``).
Needle = tuple[int, bytes, tuple[int, ...]]


class _NeedleIndex:
    """Keyed hashes of texts and their owners; finds the texts a prompt contains without keeping
    the texts. A text of at least ``_LONG`` characters is indexed by the hashes of its 16
    windows at offsets 0..15, so the prompt is hashed only at every 16th position; shorter
    texts by their whole hash, compared with every window of their length."""

    def __init__(self) -> None:
        key = os.urandom(32)
        self._key = key
        self._salt = int.from_bytes(key[:8], "little")  # window hashes are keyed too
        self._owners: dict[Needle, set] = {}
        self._anchors: dict[int, set[tuple[Needle, int]]] = {}  # window hash -> (needle, offset)
        self._short: dict[int, dict[int, set[Needle]]] = {}  # length -> window hash -> needles

    def keyed_hash(self, text: str) -> bytes:
        """The keyed hash of a whole text (this index's random key): 16 bytes, never the text."""
        return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), key=self._key, digest_size=16).digest()

    def _window(self, text: str) -> int:
        return hash((self._salt, text))

    def needle(self, text: str) -> Needle:
        n = len(text)
        if n >= _LONG:
            windows = tuple(self._window(text[o : o + _STRIDE]) for o in range(_STRIDE))
        else:
            windows = (self._window(text),)
        return n, self.keyed_hash(text), windows

    def __bool__(self) -> bool:
        return bool(self._owners)

    def add(self, needle: Needle, owner: Any) -> None:
        owners = self._owners.get(needle)
        if owners is None:
            owners = self._owners[needle] = set()
            windows = needle[2]
            if needle[0] >= _LONG:
                for offset, w in enumerate(windows):
                    self._anchors.setdefault(w, set()).add((needle, offset))
            else:
                self._short.setdefault(needle[0], {}).setdefault(windows[0], set()).add(needle)
        owners.add(owner)

    def discard(self, needle: Needle, owner: Any) -> None:
        owners = self._owners.get(needle)
        if owners is None:
            return
        owners.discard(owner)
        if owners:
            return
        del self._owners[needle]
        windows = needle[2]
        if needle[0] >= _LONG:
            for offset, w in enumerate(windows):
                group = self._anchors[w]
                group.discard((needle, offset))
                if not group:
                    del self._anchors[w]
        else:
            by_hash = self._short[needle[0]]
            by_hash[windows[0]].discard(needle)
            if not by_hash[windows[0]]:
                del by_hash[windows[0]]
            if not by_hash:
                del self._short[needle[0]]

    def find(self, prompt: str) -> tuple[set[Needle], set]:
        """The needles ``prompt`` contains, and their owners."""
        hits: set[Needle] = set()
        size, full, salt = len(prompt), self.keyed_hash, self._salt
        anchors = self._anchors
        if anchors:
            for q in range(0, size - _STRIDE + 1, _STRIDE):
                group = anchors.get(hash((salt, prompt[q : q + _STRIDE])))
                if group:
                    for needle, offset in group:
                        start, n = q - offset, needle[0]
                        if needle not in hits and start >= 0 and start + n <= size and full(prompt[start : start + n]) == needle[1]:
                            hits.add(needle)
        for n, by_hash in self._short.items():
            for p in range(size - n + 1):
                shorts = by_hash.get(hash((salt, prompt[p : p + n])))
                if shorts:
                    h = full(prompt[p : p + n])
                    hits.update(short for short in shorts if short[1] == h)
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


class _Renderer:
    """How one watched consumer puts a stored item into prompts: ``example_prompt`` applied to
    the example (the payload, or for a vector store's documents their metadata, as the stock
    selectors do), or a document's ``page_content``."""

    def __init__(self, example_prompt: Any = None, from_metadata: bool = False) -> None:
        self.example_prompt, self.from_metadata = example_prompt, from_metadata

    def key(self) -> tuple:
        return (id(self.example_prompt), self.from_metadata)

    def texts(self, example_id: str, payload: Any) -> list[str]:
        """The texts that all occur in a prompt holding the item."""
        prompt = self.example_prompt
        if prompt is None:
            if not isinstance(payload, dict) or not isinstance(payload.get("page_content"), str):
                raise ERASEError(f"ForgettingCache: item {example_id!r} is not a document (no page_content); watch the "
                                 "few-shot prompt that renders it instead")
            return [payload["page_content"]]
        example = payload.get("metadata") if self.from_metadata and isinstance(payload, dict) else payload
        if not isinstance(example, dict):
            raise ERASEError(f"ForgettingCache: item {example_id!r} is not an example (a dict of fields)")
        try:
            values = {key: example[key] for key in prompt.input_variables}
        except KeyError as exc:
            raise ERASEError(
                f"ForgettingCache: the watched example_prompt needs {exc.args[0]!r}, which example {example_id!r} "
                "lacks; watch the prompt template that actually renders this selector's examples"
            ) from None
        if isinstance(prompt, StringPromptTemplate):
            return [prompt.format(**values)]
        return [t for message in prompt.format_messages(**values) for t in _message_texts(message)]


def _index_of(source: Any) -> ExampleIndex:
    if not isinstance(source.index, ExampleIndex):
        raise ERASEError(f"this {type(source).__name__} has no example index: it was built without validation")
    return source.index


class _Pool:
    """One watched engine: its renderers, and the items it handed out that are still live."""

    def __init__(self, index: ExampleIndex, number: int) -> None:
        self.index, self.number = index, number
        self.renderers: list[_Renderer] = []
        self.stored = index.path is not None  # other handles may forget: follow the store's version
        self.version: int | None = None
        #: live item id -> (keyed hash of its payload, its renderings: one per renderer, each a
        #: frozenset of parts, each part the frozenset of its variants' needles (any may occur))
        self.items: dict[str, tuple[bytes, tuple[frozenset, ...]]] = {}
        self.on_forget: Callable[[Sequence[str]], None] = lambda ids: None  # set by watch, kept to unsubscribe
        self.on_handout: Callable[[Sequence[_handouts.Item]], None] = lambda items: None


class ForgettingCache(BaseCache):
    """An LLM cache (around any ``BaseCache``) that forgets what the watched engines forget.

    ``inner``: the cache that stores the generations (default: a new ``InMemoryCache``).
    ``clear_inner``: clear ``inner`` now (default ``False``). Entries already in it were not
    written through this wrapper, so which examples their prompts contain is unknown and no
    forget removes them on purpose; the first forget that drops an entry rebuilds ``inner`` from
    this wrapper's entries, and they go then.

    Call :meth:`watch` for every ERASE source whose output reaches the LLM, before serving.
    Then, for every entry written through this cache whose prompt contains an item a watched
    engine handed out (rendered as the watched prompt renders it):

    * a forget through any object over the engine (``forget(ids)``, ``forget(subject=)``,
      ``forget_where``, ``delete``, an upsert replacing the item, async twins) drops the entry
      from ``inner`` before it returns;
    * a forget by another handle or process on the same store (the ``erase`` CLI too) is
      noticed at this cache's next ``lookup``/``update``/``clear``/:meth:`purge_forgotten`,
      which drops the entry before anything else;
    * a generation whose prompt contains an example forgotten meanwhile is not stored.

    Not covered: entries written to ``inner`` by anything but this wrapper, prompts that render
    an item differently from the watched template, items that reach prompts without a watched
    engine handing them out. Whether a dropped entry's bytes leave the disk is up to
    ``inner.clear()`` (for SQLite: ``PRAGMA secure_delete=ON``, or ``VACUUM``).
    """

    def __init__(self, inner: BaseCache | None = None, *, clear_inner: bool = False) -> None:
        self.inner: BaseCache = InMemoryCache() if inner is None else inner
        if not isinstance(self.inner, BaseCache):
            raise TypeError(f"inner must be a langchain_core BaseCache, got {type(self.inner).__name__}")
        if clear_inner:
            self.inner.clear()
        self._lock = threading.RLock()
        self._pools: list[_Pool] = []
        self._needles = _NeedleIndex()
        self._entries: dict[tuple[str, str], frozenset] = {}  # (prompt, llm_string) -> (pool, id) in it
        self._by_owner: dict[tuple[int, str], set[tuple[str, str]]] = {}
        self._tombs: dict[frozenset, int] = {}  # renderings of forgotten items (keyed hashes only)

    # ------------------------------------------------------------------ watching
    def watch(self, source: Any, example_prompt: Any = None) -> "ForgettingCache":
        """Track what ``source`` puts in prompts; returns this cache.

        ``source``: a ``FewShotPromptTemplate`` / ``FewShotChatMessagePromptTemplate`` over an
        ``ERASEExampleSelector`` or a stock ``SemanticSimilarityExampleSelector`` /
        ``MaxMarginalRelevanceExampleSelector`` over an ``ERASEVectorStore`` (its
        ``example_prompt`` says how examples are rendered); one of those selectors with
        ``example_prompt=``; or an ``ERASERetriever``, ``ERASEVectorStore`` or
        ``VectorStoreRetriever`` over one (documents are recognised by ``page_content``).
        Everything over the same engine is watched with it."""
        index, renderer = self._resolve(source, example_prompt)
        with self._lock:
            pool = next((p for p in self._pools if p.index is index), None)
            if pool is None:
                pool = _Pool(index, len(self._pools))
                self._pools.append(pool)
                pool.on_forget = functools.partial(self._forgotten, pool)
                pool.on_handout = functools.partial(self._handed_out, pool)
                index.add_forget_listener(pool.on_forget)
                _handouts.subscribe(index, pool.on_handout)
            if any(r.key() == renderer.key() for r in pool.renderers):
                return self
            pool.renderers.append(renderer)
            known = list(pool.items)
        if known:  # items seen before this renderer: render them its way too
            self._handed_out(pool, [(i, p) for i, p in self._payloads(index, known)], refresh=True)
        return self

    @staticmethod
    def _resolve(source: Any, example_prompt: Any) -> tuple[ExampleIndex, _Renderer]:
        from .example_selector import ERASEExampleSelector
        from .retriever import ERASERetriever
        from .vectorstore import ERASEVectorStore

        if hasattr(source, "example_selector") and hasattr(source, "example_prompt"):
            if example_prompt is not None:
                raise ERASEError("example_prompt= is taken from the few-shot prompt template; do not give it too")
            if source.example_selector is None:
                raise ERASEError("this few-shot prompt has no example selector (a fixed examples=[...] list cannot forget)")
            source, example_prompt = source.example_selector, source.example_prompt
            if not isinstance(source, (ERASEExampleSelector, SemanticSimilarityExampleSelector,
                                       MaxMarginalRelevanceExampleSelector)):
                raise ERASEError(f"this few-shot prompt's selector ({type(source).__name__}) is not an "
                                 "ERASEExampleSelector or a stock selector over an ERASEVectorStore")
        if isinstance(source, (ERASEExampleSelector, SemanticSimilarityExampleSelector, MaxMarginalRelevanceExampleSelector)):
            if example_prompt is None:
                raise ERASEError(
                    "watching a selector needs example_prompt=, the template each example is rendered with "
                    "(or watch the FewShotPromptTemplate itself)"
                )
            if isinstance(source, ERASEExampleSelector):
                return _index_of(source), _Renderer(example_prompt, from_metadata=source.vectorstore is not None)
            if not isinstance(source.vectorstore, ERASEVectorStore):
                raise ERASEError(f"this {type(source).__name__} is over {type(source.vectorstore).__name__}, not an "
                                 "ERASEVectorStore: nothing there can be forgotten exactly")
            return source.vectorstore.index, _Renderer(example_prompt, from_metadata=True)
        if example_prompt is not None:
            raise ERASEError("documents are recognised by page_content; example_prompt does not apply")
        if isinstance(source, VectorStoreRetriever):
            if not isinstance(source.vectorstore, ERASEVectorStore):
                raise ERASEError(f"this retriever is over {type(source.vectorstore).__name__}, not an ERASEVectorStore")
            source = source.vectorstore
        if isinstance(source, ERASERetriever):
            return _index_of(source), _Renderer()
        if isinstance(source, ERASEVectorStore):
            return source.index, _Renderer()
        raise TypeError(f"cannot watch {type(source).__name__}: give an ERASE selector, retriever, vector store, "
                        "a stock selector or retriever over an ERASEVectorStore, or a few-shot prompt")

    def close(self) -> None:
        """Stop watching (the engines no longer call this cache); the entries stay in ``inner``."""
        with self._lock:
            pools, self._pools = self._pools, []
        for pool in pools:
            pool.index.remove_forget_listener(pool.on_forget)
            _handouts.unsubscribe(pool.index, pool.on_handout)

    # ------------------------------------------------------------------ items handed out
    def _payload_hash(self, payload: Any) -> bytes:
        return self._needles.keyed_hash(json.dumps(payload, sort_keys=True, ensure_ascii=False, default=repr))

    @staticmethod
    def _payloads(index: ExampleIndex, ids: Sequence[str]) -> list[tuple[str, Any]]:
        """The current payloads of those of ``ids`` still in ``index``."""
        out = []
        for example_id in ids:
            try:
                out.append((example_id, index.get(example_id)))
            except UnknownIdError:
                pass
        return out

    def _handed_out(self, pool: _Pool, items: Sequence[tuple[str, Any]], refresh: bool = False) -> None:
        """Register what a watched engine handed out. A new item is then checked against the
        engine: one handed out just before its forget committed is buried at once."""
        fresh = []
        with self._lock:
            if pool not in self._pools:
                return
            for example_id, payload in items:
                digest = self._payload_hash(payload)
                held = pool.items.get(example_id)
                if held is not None and held[0] == digest and not refresh:
                    continue
                renderings = tuple(dict.fromkeys(self._rendering(r.texts(example_id, payload)) for r in pool.renderers))
                if held is not None:
                    if held[0] == digest and held[1] == renderings:
                        continue
                    self._bury(pool, [example_id], tomb=held[0] != digest)
                self._register(pool, example_id, digest, renderings)
                fresh.append((example_id, digest))
        if fresh:
            current = {i: self._payload_hash(p) for i, p in self._payloads(pool.index, [i for i, _ in fresh])}
            gone = [i for i, digest in fresh if current.get(i) != digest]
            if gone:
                self._forgotten(pool, gone, only_if=dict(fresh))

    def _rendering(self, texts: list[str]) -> frozenset:
        """Keyed hashes of an item's texts (all must occur): per text, its variants' needles
        (any may occur). Empty texts are no evidence and are left out."""
        return frozenset(frozenset(self._needles.needle(v) for v in _variants(t)) for t in texts if t)

    def _register(self, pool: _Pool, example_id: str, digest: bytes, renderings: tuple[frozenset, ...]) -> None:
        pool.items[example_id] = (digest, renderings)
        owner = (pool.number, example_id)
        for rendering in renderings:
            for part in rendering:
                for needle in part:
                    self._needles.add(needle, owner)

    # ------------------------------------------------------------------ forgets
    def _forgotten(self, pool: _Pool, ids: Sequence[str], only_if: dict | None = None) -> None:
        """The engine's forget listener: drop the entries of ``ids`` (``only_if``: only where the
        held payload is still the one that was checked)."""
        with self._lock:
            gone = [i for i in ids if i in pool.items and (only_if is None or pool.items[i][0] == only_if.get(i))]
            if gone:
                self._bury(pool, gone)

    def _bury(self, pool: _Pool, ids: list[str], tomb: bool = True) -> None:
        """``ids`` are gone: keep their renderings as tombstones and drop their entries."""
        dropped: set[tuple[str, str]] = set()
        for example_id in ids:
            held = pool.items.pop(example_id, None)
            if held is None:
                continue
            owner = (pool.number, example_id)
            for rendering in held[1]:
                for part in rendering:
                    for needle in part:
                        self._needles.discard(needle, owner)
                if tomb and rendering and rendering not in self._tombs:
                    self._tombs[rendering] = len(self._tombs)
                    for part in rendering:
                        for needle in part:
                            self._needles.add(needle, ("dead", rendering))
            dropped |= self._by_owner.pop(owner, set())
        self._drop_entries(dropped)

    def purge_forgotten(self) -> None:
        """Drop the entries of items forgotten by other handles or processes on a watched store
        since the last check. Every ``lookup``/``update``/``clear`` does this first."""
        for pool in list(self._pools):
            if not pool.stored:
                continue  # an in-memory engine has no other handle: its forgets are announced
            version = pool.index.version  # catches up with the store
            if version == pool.version:
                continue
            with self._lock:
                held = {i: digest for i, (digest, _) in pool.items.items()}
            current = {i: self._payload_hash(p) for i, p in self._payloads(pool.index, list(held))}
            gone = [i for i, digest in held.items() if current.get(i) != digest]
            if gone:
                self._forgotten(pool, gone, only_if=held)
            pool.version = version

    async def apurge_forgotten(self) -> None:
        """Async :meth:`purge_forgotten` (runs in an executor)."""
        await run_in_executor(None, self.purge_forgotten)

    def _contained(self, prompt: str) -> tuple[set, bool]:
        """The live items ``prompt`` contains, and whether it contains a forgotten one."""
        if not self._needles:
            return set(), False
        hits, owners = self._needles.find(prompt)
        live, live_renderings, dead = set(), set(), []
        for owner in owners:
            if owner[0] == "dead":
                if all(part & hits for part in owner[1]):
                    dead.append(owner[1])
                continue
            pool = self._pools[owner[0]] if owner[0] < len(self._pools) else None
            held = pool.items.get(owner[1]) if pool is not None and pool.number == owner[0] else None
            if held is None:
                continue
            for rendering in held[1]:
                if all(part & hits for part in rendering):
                    live.add(owner)
                    live_renderings.add(rendering)
        # a forgotten rendering that is also a live item's (a duplicate) is live content
        return live, any(r not in live_renderings for r in dead)

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
        self.purge_forgotten()
        with self._lock:
            return self.inner.lookup(prompt, llm_string)

    def update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        self.purge_forgotten()
        with self._lock:
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
        self.purge_forgotten()
        with self._lock:
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
        """How many held entries contain the (live) item ``example_id`` of any watched engine."""
        with self._lock:
            return sum(len(keys) for owner, keys in self._by_owner.items() if owner[1] == example_id)

    def __repr__(self) -> str:
        return f"ForgettingCache(inner={type(self.inner).__name__}, entries={len(self._entries)}, engines={len(self._pools)})"
