"""ERASERecordManager: LangChain's index() with every cleanup mode keeps no record, hash, id or
text of a dropped or forgotten document, on a store file and in memory; the stock record
managers drift (they keep records of rows a forget removed, so index() skips re-adding them)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from langchain_core.documents import Document
from langchain_core.indexing import InMemoryRecordManager, aindex, index

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lc_helpers import NGramEmbeddings  # noqa: E402
from residue import all_file_bytes, surviving  # noqa: E402

from erase_core import ERASEError  # noqa: E402
from erase_core.records import ExampleRecords  # noqa: E402
from erase_langchain import ERASERecordManager, ERASEVectorStore  # noqa: E402

SOURCES = {
    f"src-{s}.txt": [f"Chunk {c} of source {s}: the quarterly report for region {s} lists {c * 7 + s} open tickets."
                     for c in range(2)]
    for s in range(4)
}


def docs(sources=SOURCES, drop: set[tuple[str, int]] = frozenset()) -> list[Document]:
    return [Document(page_content=text, metadata={"source": src, "chunk": c})
            for src, chunks in sources.items() for c, text in enumerate(chunks) if (src, c) not in drop]


def new_store(tmp_path: Path | None, name: str = "pool") -> ERASEVectorStore:
    path = None if tmp_path is None else tmp_path / f"{name}.sqlite"
    return ERASEVectorStore(NGramEmbeddings(dim=64), persist_path=path, k=2, seed=5, subject_key="source")


def fresh_digest(tmp_path: Path | None, documents: list[Document]) -> str:
    """The digest of a store built from scratch on ``documents`` through index() (same seed)."""
    where = None if tmp_path is None else tmp_path / "fresh"
    if where is not None:
        where.mkdir()
    store = new_store(where)
    manager = ERASERecordManager("fresh", store)
    index(documents, manager, store, cleanup="full", source_id_key="source")
    digest = store.index.digest()
    manager.close()
    store.index.close()
    return digest


def residue(directory: Path, needles: list[str]) -> list:
    return surviving(all_file_bytes(directory), [n.encode() for n in needles])


def assert_gone(store, manager, directory, gone_ids, gone_texts, kept_ids):
    """(b) the manager knows nothing of ``gone_ids``; (c) no file holds them or the texts,
    while kept ids are still found by the manager (so the checks can fail)."""
    assert manager.exists(gone_ids) == [False] * len(gone_ids)
    assert not set(gone_ids) & set(manager.list_keys())
    assert set(manager.list_keys()) == set(store.index.ids) and set(kept_ids) <= set(manager.list_keys())
    if directory is not None:
        assert residue(directory, [*gone_ids, *gone_texts]) == []


@pytest.mark.parametrize("on_disk", [True, False], ids=["store", "memory"])
@pytest.mark.parametrize("cleanup", ["incremental", "full", "scoped_full"])
def test_index_cleanup_forgets_dropped_documents_exactly(tmp_path, on_disk, cleanup):
    directory = tmp_path / "run" if on_disk else None
    if directory is not None:
        directory.mkdir()
    store = new_store(directory)
    manager = ERASERecordManager("docs", store)
    first = index(docs(), manager, store, cleanup=cleanup, source_id_key="source")
    assert first["num_added"] == 8
    before = set(store.index.ids)
    assert set(manager.list_keys()) == before
    # second run: one chunk of src-2 dropped (every mode removes it); full also drops src-3
    drop = {("src-2.txt", 1)} | ({("src-3.txt", 0), ("src-3.txt", 1)} if cleanup == "full" else set())
    remaining = docs(drop=drop)
    second = index(remaining, manager, store, cleanup=cleanup, source_id_key="source")
    assert second["num_deleted"] == len(drop) and second["num_added"] == 0
    gone = sorted(before - set(store.index.ids))
    assert len(gone) == len(drop)
    # (a) the store equals a fresh build on the remaining documents
    assert store.index.digest() == fresh_digest(tmp_path if on_disk else None, remaining)
    gone_texts = [SOURCES[s][c] for s, c in drop]
    assert_gone(store, manager, directory, gone, gone_texts, sorted(store.index.ids))
    if cleanup == "full" and directory is not None:
        assert residue(directory, ["src-3.txt"]) == []  # nor the group id (source) of a dropped source
        assert residue(directory, ["src-1.txt"]) == []  # kept groups are sealed too
    manager.close()
    store.index.close()


@pytest.mark.parametrize("on_disk", [True, False], ids=["store", "memory"])
def test_a_forget_outside_index_removes_the_records_and_index_re_adds(tmp_path, on_disk):
    """The drift the stock managers have: a document forgotten by the store (not by index())."""
    directory = tmp_path if on_disk else None
    store = new_store(directory)
    manager = ERASERecordManager("docs", store)
    index(docs(), manager, store, cleanup="incremental", source_id_key="source")
    victims = store.index.ids_of_subject("src-1.txt")
    store.forget(subject="src-1.txt")  # e.g. a person's erasure request, outside index()
    assert_gone(store, manager, directory, victims, SOURCES["src-1.txt"], sorted(store.index.ids))
    if directory is not None:
        assert residue(directory, ["src-1.txt"]) == []
    # the next run sees the documents are not indexed, and indexes them again
    again = index(docs(), manager, store, cleanup="incremental", source_id_key="source")
    assert again["num_added"] == 2 and again["num_skipped"] == 6
    assert sorted(store.index.ids) == sorted(manager.list_keys())
    manager.close()
    store.index.close()


@pytest.mark.parametrize("stock", ["memory", "sql"])
def test_the_stock_record_managers_drift(tmp_path, stock):
    """The same forget with LangChain's own record managers: the record stays, index() skips the
    document (it is missing from the store for good) and its key stays on disk."""
    store = new_store(tmp_path)
    if stock == "memory":
        manager = InMemoryRecordManager("docs")
    else:
        # LangChain's SQL record manager lives in langchain-classic, not a dependency of ours
        # (the residue-peers extra brings it); the in-memory case shows the same drift
        SQLRecordManager = pytest.importorskip("langchain_classic.indexes", reason="langchain-classic is not installed").SQLRecordManager

        manager = SQLRecordManager("docs", db_url=f"sqlite:///{tmp_path / 'records.sqlite'}")
        manager.create_schema()
    index(docs(), manager, store, cleanup="incremental", source_id_key="source")
    victims = store.index.ids_of_subject("src-1.txt")
    store.forget(subject="src-1.txt")
    assert manager.exists(victims) == [True, True]  # records of rows that are gone
    again = index(docs(), manager, store, cleanup="incremental", source_id_key="source")
    assert again["num_added"] == 0 and again["num_skipped"] == 8
    assert not set(victims) & set(store.index.ids)  # drift: index() believes they are indexed
    if stock == "sql":
        assert residue(tmp_path, victims[:1])  # the forgotten document's key, in clear on disk
        manager.engine.dispose()
    store.index.close()


def test_async_index_with_full_cleanup(tmp_path):
    store = new_store(tmp_path)
    manager = ERASERecordManager("docs", store)

    async def run():
        await aindex(docs(), manager, store, cleanup="full", source_id_key="source")
        before = set(store.index.ids)
        remaining = docs(drop={("src-0.txt", 0), ("src-0.txt", 1)})
        result = await aindex(remaining, manager, store, cleanup="full", source_id_key="source")
        return before, remaining, result

    before, remaining, result = asyncio.run(run())
    assert result["num_deleted"] == 2
    gone = sorted(before - set(store.index.ids))
    assert store.index.digest() == fresh_digest(tmp_path, remaining)
    assert asyncio.run(manager.aexists(gone)) == [False, False]
    assert sorted(asyncio.run(manager.alist_keys())) == sorted(store.index.ids)
    assert residue(tmp_path, [*gone, *SOURCES["src-0.txt"], "src-0.txt"]) == []
    manager.close()
    store.index.close()


def test_a_run_that_fails_between_add_and_update_heals_on_the_next_run(tmp_path, monkeypatch):
    """index() adds rows, then records them: a failure in between leaves rows without records
    (never records without rows); the next run re-adds them (an upsert: no duplicate)."""
    store = new_store(tmp_path)
    manager = ERASERecordManager("docs", store)
    real_put = ExampleRecords.put

    def failing_put(self, namespace, items):
        raise OSError("disk went away")

    monkeypatch.setattr(ExampleRecords, "put", failing_put)
    with pytest.raises(OSError):
        index(docs(), manager, store, cleanup="full", source_id_key="source")
    assert len(store.index) == 8 and manager.list_keys() == []
    monkeypatch.setattr(ExampleRecords, "put", real_put)
    index(docs(), manager, store, cleanup="full", source_id_key="source")
    assert sorted(manager.list_keys()) == sorted(store.index.ids) and len(store.index) == 8
    assert store.index.digest() == fresh_digest(tmp_path, docs())
    manager.close()
    store.index.close()


def test_a_run_that_fails_between_delete_and_delete_keys_keeps_no_record(tmp_path, monkeypatch):
    """Cleanup deletes rows, then records: the records went with the rows already."""
    store = new_store(tmp_path)
    manager = ERASERecordManager("docs", store)
    index(docs(), manager, store, cleanup="full", source_id_key="source")
    before = set(store.index.ids)

    def failing_delete(self, keys):
        raise OSError("interrupted")

    monkeypatch.setattr(ERASERecordManager, "delete_keys", failing_delete)
    with pytest.raises(OSError):
        index(docs(drop={("src-3.txt", 1)}), manager, store, cleanup="full", source_id_key="source")
    gone = sorted(before - set(store.index.ids))
    assert len(gone) == 1
    assert manager.exists(gone) == [False] and sorted(manager.list_keys()) == sorted(store.index.ids)
    assert residue(tmp_path, [*gone, SOURCES["src-3.txt"][1]]) == []
    manager.close()
    store.index.close()


def test_records_follow_the_store_across_handles(tmp_path):
    store = new_store(tmp_path)
    manager = ERASERecordManager("docs", store)
    index(docs(), manager, store, cleanup="full", source_id_key="source")
    other = ERASEVectorStore.open(tmp_path / "pool.sqlite", NGramEmbeddings(dim=64))  # another handle
    victim = other.index.ids_of_subject("src-0.txt")
    other.forget(subject="src-0.txt")
    assert manager.exists(victim) == [False, False]
    second = ERASERecordManager("docs", other)
    assert sorted(second.list_keys()) == sorted(manager.list_keys()) == sorted(store.index.ids)
    assert ERASERecordManager("other-namespace", other).list_keys() == []
    second.close()
    other.index.close()
    manager.close()
    store.index.close()


def test_bad_input(tmp_path):
    store = new_store(None)
    with pytest.raises(ERASEError, match="ERASEVectorStore"):
        ERASERecordManager("docs", object())
    with pytest.raises(ERASEError, match="namespace"):
        ERASERecordManager("", store)
    manager = ERASERecordManager("docs", store)
    with pytest.raises(ValueError, match="group_ids"):
        manager.update(["a", "b"], group_ids=["g"])
    with pytest.raises(ValueError, match="past"):
        manager.update(["a"], time_at_least=manager.get_time() + 3600)
    with pytest.raises(ERASEError, match="group id"):
        manager.update(["a"], group_ids=[3])  # type: ignore[list-item]
    assert manager.list_keys() == []
    manager.update(["a", "b"], group_ids=["g", None])
    assert manager.list_keys(group_ids=["g"]) == ["a"] and manager.list_keys(limit=1) in (["a"], ["b"])
    assert manager.list_keys(after=manager.get_time()) == []
    manager.delete_keys(["a", "missing"])
    assert manager.exists(["a", "b"]) == [False, True]
