"""Which stored examples the LangChain objects hand out, per engine.

Every ERASE LangChain object that returns stored items to LangChain code (a selector's
selection, a retriever's or a vector store's documents) reports them here with the engine
(:class:`~erase_core.ExampleIndex`) they came from. A :class:`~erase_langchain.ForgettingCache`
subscribes to the engines it watches, so it learns what may appear in the prompts it will be
asked to cache, whichever object (an ERASE selector, a stock selector or ``VectorStoreRetriever``
over an ``ERASEVectorStore``) handed it out. Costs one dictionary lookup when nothing listens.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any, Callable, Sequence

from erase_core import ExampleIndex

#: (id, payload) of one handed-out item.
Item = tuple[str, Any]

_lock = threading.Lock()
_subscribers: "weakref.WeakKeyDictionary[ExampleIndex, tuple[Callable[[Sequence[Item]], None], ...]]" = (
    weakref.WeakKeyDictionary()
)


def subscribe(index: ExampleIndex, callback: Callable[[Sequence[Item]], None]) -> None:
    """Call ``callback(items)`` whenever an object over ``index`` hands items out."""
    with _lock:
        callbacks = _subscribers.get(index, ())
        if callback not in callbacks:
            _subscribers[index] = callbacks + (callback,)


def unsubscribe(index: ExampleIndex, callback: Callable[[Sequence[Item]], None]) -> None:
    with _lock:
        callbacks = tuple(c for c in _subscribers.get(index, ()) if c != callback)
        if callbacks:
            _subscribers[index] = callbacks
        else:
            _subscribers.pop(index, None)


def handed_out(index: ExampleIndex | None, items: Sequence[Item]) -> None:
    """Report ``items`` (id, payload) as returned to the caller from ``index``."""
    if index is None or not items:
        return
    callbacks = _subscribers.get(index)
    if callbacks:
        for callback in callbacks:
            callback(items)
