"""erase_core.payload_json: the one JSON spelling of a payload, used by the index and the adapters."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import erase_core
from erase_core import ERASEError, ExampleIndex, payload_json


def test_canonical_text():
    assert payload_json({"b": 1, "a": [1.5, "é", None, True]}) == '{"a": [1.5, "é", null, true], "b": 1}'
    assert payload_json("x") == '"x"'
    payload = {"input": "q", "output": {"z": [1, 2], "y": "ü"}}
    assert json.loads(payload_json(payload)) == payload
    assert "payload_json" in erase_core.__all__


@pytest.mark.parametrize(
    "payload, problem",
    [({"v": math.nan}, "not JSON-serialisable"), ({"v": object()}, "not JSON-serialisable"),
     ({1, 2}, "not JSON-serialisable")],
)
def test_bad_payload_raises_ours(payload, problem):
    with pytest.raises(ERASEError, match=problem):
        payload_json(payload)


def test_too_deep_raises_ours():
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(ERASEError, match="nested too deeply"):
        payload_json(deep)


def test_the_index_refuses_what_payload_json_refuses_and_stays_unchanged():
    index = ExampleIndex(k=1)
    index.add(np.eye(2, dtype=np.float32)[:1], [{"t": 1}], ids=["a"])
    before = index.digest()
    with pytest.raises(ERASEError, match="not JSON-serialisable"):
        index.add(np.eye(2, dtype=np.float32)[1:], [{"t": math.inf}], ids=["b"])
    assert index.digest() == before and len(index) == 1
