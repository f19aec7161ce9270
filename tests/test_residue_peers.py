"""benchmarks/bench_residue_peers.py and the scanner it shares with the tests
(erase_core.evaluation.residue): the bench's scan finds what a store keeps (so it can fail), finds
nothing of a forgotten example in ERASE's store, and its report is written. Random unit vectors,
a small corpus: no model. Peers of the optional ``residue-peers`` extra run when installed
(marked slow) and are skipped, with the reason, when not."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from erase_core.evaluation.residue import all_file_bytes, surviving, vector_windows

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_residue_peers.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_residue_peers", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


@pytest.fixture(scope="module")
def corpus(bench):
    return bench.make_corpus(120, 12, 12, "random", seed=3)


@pytest.fixture(scope="module")
def shared(bench, corpus):
    return bench.shared_text_windows(corpus)


def peer(bench, name):
    (p,) = [p for p in bench.PEERS if p.name == name]
    return p


def test_surviving_step_and_width():
    rng = np.random.default_rng(0)
    secret = rng.bytes(100)
    data = rng.bytes(50) + secret[20:70] + rng.bytes(50)  # a 50-byte piece of the secret survives
    assert {off for _, _, off in surviving(data, [secret])} == set(range(20, 39))
    assert {off for _, _, off in surviving(data, [secret], step=4)} == {20, 24, 28, 32, 36}
    assert surviving(data, [secret[20:60]], step=16) == [("<bytes>", 0, 0)]  # a whole needle: offset 0
    assert surviving(data, [secret[:40]]) == []
    with pytest.raises(ValueError, match="width"):
        surviving(data, [secret], width=12)
    with pytest.raises(ValueError, match="step"):
        surviving(data, [secret], step=0)


def test_vector_windows_by_item_size():
    v16 = np.zeros(64, dtype="<f2")
    v16[30] = 0.5
    pieces = vector_windows(v16.tobytes(), item=2)
    assert len(pieces) == 1 and len(pieces[0]) == 2 * 32 - 2  # every 32-byte window holding component 30
    assert v16[30:31].tobytes() in pieces[0]
    assert vector_windows(np.zeros(64, dtype="<f8").tobytes(), item=8) == []


def test_scan_finds_every_encoding_and_skips_shared_phrases(bench, corpus, shared, tmp_path):
    """A store that keeps deleted documents in each encoding the bench knows is caught, file by
    file; a window of a deleted text that a kept text also holds is not counted."""
    d = corpus.deleted
    v = [corpus.vectors[i] for i in d]
    (tmp_path / "a.json").write_text(json.dumps({"text": corpus.texts[d[0]], "vector": v[1].astype(float).tolist()},
                                                indent=3))
    (tmp_path / "b.bin").write_bytes(b"\x00" * 7 + v[2].astype("<f2").tobytes() + v[3].astype("<f8").tobytes()
                                     + bench.encodings(v[4])["pickle"] + corpus.owners[d[5]].encode()
                                     + corpus.ids[d[6]].encode())
    kept_text = corpus.texts[corpus.kept[0]].encode()
    (tmp_path / "c.txt").write_bytes(kept_text)  # a kept document: control, never a deleted one
    r = bench.scan(tmp_path, corpus, shared)
    assert r["deleted_found"] == {"text": 1, "metadata": 1, "id": 1, "vector": 4, "any": 7}
    assert r["files_with_deleted"] == {"a.json": 2, "b.bin": 5}
    assert r["vector_encodings"]["deleted"] == ["decimal", "f16", "f64", "pickle"]

    # a kept document that quotes a deleted one whole: finding its text is no residue of the deleted one
    texts = list(corpus.texts)
    texts[corpus.kept[1]] = f"{texts[d[0]]} (quoted)"
    quoting = dataclasses.replace(corpus, texts=texts)
    clean = tmp_path / "clean"
    clean.mkdir()
    (clean / "kept.txt").write_text(texts[corpus.kept[1]])
    assert bench.scan(clean, corpus, shared)["deleted_found"]["text"] == 1  # without the quote, it is
    assert bench.scan(clean, quoting, bench.shared_text_windows(quoting))["deleted_found"]["any"] == 0


def test_erase_store_keeps_nothing_and_its_keys_are_the_control(bench, corpus, shared, tmp_path):
    for name in ("ERASE ExampleIndex", "ERASE ERASEVectorStore (LangChain)"):
        r = bench.run_peer(peer(bench, name), corpus, shared, tmp_path)
        assert "skipped" not in r, r
        (ph,) = r["phases"]
        assert ph["deleted_found"]["any"] == 0 and ph["files_with_deleted"] == {}
        assert ph["deleted_keys_found"] == 0
        assert ph["control_keys_found"] == len(corpus.control)  # the same scan finds 32-byte secrets on disk
        assert ph["control_found"]["any"] == 0  # sealed: no kept plaintext either


@pytest.mark.parametrize("name", ["InMemoryVectorStore.dump (LangChain)", "faiss IndexIDMap2(IndexFlatIP) write_index"])
def test_dependency_peers_are_scanned(bench, corpus, shared, tmp_path, name):
    r = bench.run_peer(peer(bench, name), corpus, shared, tmp_path)
    assert "skipped" not in r, r
    (ph,) = r["phases"]
    n = len(corpus.control)
    assert ph["deleted_found"]["any"] == 0  # both rewrite their file from what is left
    assert ph["control_found"]["vector"] == n  # the scan finds what they keep
    if name.startswith("InMemory"):
        assert ph["control_found"] == {"text": n, "metadata": n, "id": n, "vector": n, "any": n}
        assert ph["vector_encodings"]["control"] == ["decimal"]


OPTIONAL = ["FAISS.save_local (langchain-community)", "SimpleVectorStore + docstore persist (LlamaIndex)",
            "Chroma PersistentClient", "LanceDB", "Qdrant local mode (path=)",
            "Qdrant local mode, SQLite without SECURE_DELETE", "sqlite-vec vec0 (+ docs table)"]


@pytest.mark.slow
@pytest.mark.parametrize("name", OPTIONAL)
def test_optional_peer_runs(bench, corpus, shared, tmp_path, name):
    r = bench.run_peer(peer(bench, name), corpus, shared, tmp_path)
    if "skipped" in r:
        pytest.skip(r["skipped"])
    n = len(corpus.control)
    for ph in r["phases"]:
        assert ph["control_found"]["any"] == n, (ph["phase"], ph["control_found"])  # the scan can fail here
        assert ph["files"] > 0 and sum(ph["files_with_deleted"].values()) >= ph["deleted_found"]["any"]
    assert set(r["phases"][-1]["files_with_deleted"]) <= set(all_file_bytes(bench.store_dir(tmp_path, name)))


def test_main_writes_table_json_and_plot(bench, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert bench.main(["--n", "60", "--deleted", "6", "--control", "6", "--vectors", "random",
                       "--stores", "erase exampleindex,inmemory", "--out", str(out), "--workdir", str(tmp_path)]) == 0
    report = json.loads(out.read_text())
    assert [r["store"] for r in report["results"]] == ["ERASE ExampleIndex", "InMemoryVectorStore.dump (LangChain)"]
    assert report["n"] == 60 and report["window"] == 32 and "random" in report["embedding"]
    table = capsys.readouterr().out
    assert "| ERASE ExampleIndex | after delete | 0 | 0 / 0 | 0 / 0 | 0 / 0 | 0 / 0 | - | 0; their keys 6 |" in table
    assert "| InMemoryVectorStore.dump (LangChain) | after delete | 0 | 0 / 6 | 0 / 6 | 0 / 6 | 0 / 6 (decimal) | - | 6 |" in table
    assert out.with_suffix(".png").stat().st_size > 0
