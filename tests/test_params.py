"""Parameters are declared once (erase_core.params): the engine and every adapter refuse a bad
value with the same message, before anything is built or written, and accept numpy integers."""

from __future__ import annotations

import numpy as np
import pytest

from erase_core import ERASEError, ExampleIndex, QuantizedKMeans, UnknownArgumentError
from erase_core.params import PARAMETERS, check_index_params, check_k, check_mmr, check_params

BAD = [
    ("k", 0, r"k must be an integer in \[1, 32767\], got 0"),
    ("k", True, r"k must be an integer in \[1, 32767\], got True"),
    ("k", 40_000, r"k must be an integer in \[1, 32767\], got 40000"),
    ("strategy", "knn", r"strategy must be one of \('erase', 'similarity', 'mmr'\), got 'knn'"),
    ("epsilon", "0.1", "epsilon must be a real number, got '0.1'"),
    ("epsilon", float("nan"), "epsilon must be finite"),
    ("epsilon", 1e9, r"epsilon must be in \(0, 255\.99"),
    ("n_iter", 0, r"n_iter must be an integer in \[1, 1000\], got 0"),
    ("seed", 1.5, "seed must be an integer, got 1.5"),
    ("projection_dim", -1, r"projection_dim must be an integer in \[0, 4096\] or None, got -1"),
]
DEFAULTS = dict(k=4, strategy="erase", epsilon=None, n_iter=10, seed=0, projection_dim=None)


@pytest.mark.parametrize("name, value, message", BAD)
def test_every_door_refuses_a_bad_parameter_with_one_message(tmp_path, name, value, message):
    from langchain_core.embeddings import FakeEmbeddings

    from erase_langchain import ERASEVectorStore as LangChainStore
    from erase_llamaindex import ERASEVectorStore as LlamaIndexStore

    args = {**DEFAULTS, name: value}
    path = tmp_path / "s.db"
    doors = {
        "check_index_params": lambda: check_index_params(**args),
        "LangChain ERASEVectorStore": lambda: LangChainStore(FakeEmbeddings(size=8), persist_path=path, **args),
        "LlamaIndex ERASEVectorStore": lambda: LlamaIndexStore.from_defaults(path, **{name: value}),
        "ExampleIndex": lambda: ExampleIndex(**args, path=path),
    }
    for door, build in doors.items():
        args = {**DEFAULTS, name: value}
        with pytest.raises(ERASEError, match=message):
            build()
        assert not path.exists(), door  # refused before anything was written
    if name != "k" and name != "strategy":
        clustering = {"n_clusters": 4, name: value}
        with pytest.raises(ERASEError, match=message.replace("k must", "n_clusters must")):
            QuantizedKMeans(**clustering)


def test_numpy_numbers_are_python_numbers_after_the_check():
    out = check_index_params(np.int64(3), "mmr", np.float32(0.25), np.int32(5), np.uint8(7), np.int16(0))
    assert out == {"k": 3, "strategy": "mmr", "epsilon": 0.25, "n_iter": 5, "seed": 7, "projection_dim": 0}
    assert all(type(v) in (int, float, str) for v in out.values())
    assert check_k(np.int64(2)) == 2 and check_mmr(np.int64(7), 1) == (7, 1.0)
    assert check_index_params(4, "erase", None, 10, 0, None)["epsilon"] == 0.07


def test_selection_sizes_and_mmr_arguments():
    with pytest.raises(ERASEError, match="similarity_top_k must be a positive integer, got 0"):
        check_k(0, "similarity_top_k")
    with pytest.raises(ERASEError, match="fetch_k must be a positive integer"):
        check_mmr(0, 0.5)
    with pytest.raises(ERASEError, match=r"lambda_mult must be a number in \[0, 1\], got 1.5"):
        check_mmr(20, 1.5)
    with pytest.raises(UnknownArgumentError, match="'n_iters' \\(did you mean 'n_iter'\\?\\)"):
        check_params("QuantizedKMeans", {"n_iters": 3})
    assert set(PARAMETERS) >= {"n_clusters", "n_iter", "seed", "epsilon", "scale", "projection_dim", "strategy", "k",
                               "fetch_k", "lambda_mult"}
