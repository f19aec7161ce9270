"""The core filter engine: the value index answers what the rule says, forgets by any filter are
exact, and the CLI takes the same language. (The comparisons with the frameworks' stock stores
are in tests/langchain/test_lc_filters.py and tests/llamaindex/test_li_filters.py.)"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from erase_core import ERASEError, ExampleIndex
from erase_core.cli import main
from erase_core.filters import check_filter, like_pattern, matches

_VALUE = st.one_of(
    st.sampled_from([0, 1, 2, 1.0, 2.5, -1, True, False, None, "", "a", "b", "ab", "A%"]),
    st.lists(st.sampled_from([0, 1, True, "a", None]), max_size=2),
    st.sampled_from([{"a": 1}, {}]),
)
_KEYS = st.sampled_from(["x", "y"])
_ORDERED = st.sampled_from([0, 1, 1.5, -1, "", "a", "b"])


def _leaf():
    return st.one_of(
        st.builds(lambda k, v: {k: {"$eq": v}}, _KEYS, _VALUE),
        st.builds(lambda k, op, v: {k: {op: v}}, _KEYS, st.sampled_from(["$ne", "$contains"]), _VALUE),
        st.builds(lambda k, op, v: {k: {op: v}}, _KEYS, st.sampled_from(["$in", "$nin"]), st.lists(_VALUE, max_size=3)),
        st.builds(lambda k, op, v: {k: {op: v}}, _KEYS, st.sampled_from(["$gt", "$gte", "$lt", "$lte"]), _ORDERED),
        st.builds(lambda k, v: {k: {"$exists": v}}, _KEYS, st.booleans()),
        st.builds(lambda k, op, v: {k: {op: v}}, _KEYS, st.sampled_from(["$like", "$ilike"]), st.sampled_from(["a%", "%", "_", "a\\%"])),
    )


_FILTER = st.recursive(
    _leaf(),
    lambda inner: st.one_of(
        st.builds(lambda op, ws: {op: ws}, st.sampled_from(["$and", "$or"]), st.lists(inner, max_size=3)),
        st.builds(lambda w: {"$not": w}, inner),
        st.builds(lambda a, b: {**a, **b}, inner, inner),
    ),
    max_leaves=5,
)


def _vectors(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 6))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.dictionaries(_KEYS, _VALUE, max_size=2), min_size=1, max_size=12), st.lists(_FILTER, min_size=1, max_size=4),
       st.data())
def test_index_answers_equal_the_rule_on_each_example(metadatas, filters, data):
    """What the value index answers (ids_where, search) is the rule applied to each example's
    metadata (examples without metadata included), also after forgets changed the index."""
    n = len(metadatas)
    ids = [f"e{i}" for i in range(n)]
    index = ExampleIndex(k=2, strategy="similarity", seed=0)
    index.add(_vectors(n), list(range(n)), ids=ids, metadata=[m or None for m in metadatas])
    alive = dict(zip(ids, metadatas))
    for where in filters:
        want = sorted(i for i, m in alive.items() if matches(where, m))
        assert index.ids_where(where) == want
        assert sorted(s.id for s in index.search(np.ones(6), n, filter=where)) == want
        gone = data.draw(st.sets(st.sampled_from(sorted(alive)), max_size=2)) if alive else set()
        if gone:
            index.forget(sorted(gone))
            for i in gone:
                del alive[i]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.dictionaries(_KEYS, _VALUE, max_size=2), min_size=2, max_size=14), _FILTER)
def test_forget_where_equals_a_fresh_build_without_the_matches(metadatas, where):
    n = len(metadatas)
    ids = [f"e{i}" for i in range(n)]
    X = _vectors(n, 1)
    index = ExampleIndex(k=2, strategy="erase", seed=3)
    index.add(X, list(range(n)), ids=ids, metadata=[m or None for m in metadatas])
    receipt = index.forget_where(where)
    keep = [j for j in range(n) if not matches(where, metadatas[j])]
    assert sorted(receipt.ids) == sorted(ids[j] for j in range(n) if j not in keep)
    fresh = ExampleIndex(k=2, strategy="erase", seed=3)
    if keep:
        fresh.add(X[keep], keep, ids=[ids[j] for j in keep], metadata=[metadatas[j] or None for j in keep])
    assert index.digest() == fresh.digest()
    if len(keep) >= 2:
        assert [s.id for s in index.select()] == [s.id for s in fresh.select()]
    assert len(index.forgotten(where=where)) == 1


def test_the_rule_on_single_values():
    assert matches({"v": 1}, {"v": 1.0}) and not matches({"v": 1}, {"v": True}) and matches({"v": True}, {"v": True})
    assert not matches({"v": None}, {}) and matches({"v": None}, {"v": None})
    assert matches({"v": {"$ne": 1}}, {}) and matches({"v": {"$nin": [1]}}, {}) and not matches({"v": {"$in": [None]}}, {})
    assert not matches({"v": {"$gt": 0}}, {"v": True}) and not matches({"v": {"$gt": "a"}}, {"v": 5})
    assert matches({"v": {"$gt": "a"}}, {"v": "b"}) and matches({"v": {"$gte": 1, "$lt": 2}}, {"v": 1.5})
    assert matches({"v": {"$contains": "a"}}, {"v": ["a"]}) and matches({"v": {"$contains": "a"}}, {"v": "bab"})
    assert matches({"v": {"$contains": "a"}}, {"v": {"a": 0}}) and not matches({"v": {"$contains": 1}}, {"v": [True]})
    assert matches({"v": [1, {"a": 2.0}]}, {"v": [1.0, {"a": 2}]})
    assert matches({"v": {"$exists": True}}, {"v": None}) and matches({"v": {"$exists": False}}, {"w": 1})
    assert matches({"$not": [{"v": 1}, {"v": 2}]}, {"v": 3}) and not matches({"$not": [{"v": 1}, {"v": 2}]}, {"v": 2})
    assert matches({"$and": []}, {}) and not matches({"$or": []}, {"v": 1})
    assert like_pattern("a\\%_").fullmatch("a%b") and not like_pattern("a\\%_").fullmatch("abb")
    assert matches({"v": {"$ilike": "ST%"}}, {"v": "straße"}) and not matches({"v": {"$like": "ST%"}}, {"v": "straße"})
    assert matches({"v": {"$like": "a%"}}, {"v": "a\nb"})  # % spans lines


@pytest.mark.parametrize("where, message", [
    ({"v": {"$regex": "a"}}, r"unsupported operator '\$regex' on field 'v'"),
    ({"$nor": []}, r"unsupported logical operator '\$nor'"),
    ({"v": {"$gt": True}}, r"\$gt on 'v' needs a number or a string; got True"),
    ({"v": {"$lt": None}}, r"\$lt on 'v' needs a number or a string"),
    ({"v": {"$gt": float("inf")}}, "not a JSON number"),
    ({"v": {"$nin": "ab"}}, r"\$nin on 'v' needs a list of values"),
    ({"v": {"$eq": float("nan")}}, "not a JSON value"),
    ({"v": {"$eq": object()}}, "not a JSON value"),
    ({"$and": {"v": 1}}, r"\$and needs a list of filters"),
    ({"$and": [1]}, "an entry of \\$and must be a dict"),
    ({"$not": 3}, r"\$not needs a list of filters"),
    ({"v": {"$not": {"$eq": 1}}}, "logical operator"),
    ({"v": {"$eq": 1, "w": 2}}, "not all operators"),
    ({1: 2}, "not a string"),
    ({}, "empty dict"),
    ([], "must be a dict"),
])
def test_bad_filters_name_the_problem_and_change_nothing(where, message):
    with pytest.raises(ERASEError, match=message):
        check_filter(where)
    index = ExampleIndex(k=2, strategy="similarity")
    index.add(_vectors(3), [0, 1, 2], ids=["a", "b", "c"], metadata=[{"v": 1}, None, {"v": "x"}])
    digest = index.digest()
    for call in (lambda: index.forget_where(where), lambda: index.ids_where(where),
                 lambda: index.search(np.ones(6), 2, filter=where)):
        with pytest.raises(ERASEError, match=message):
            call()
    assert index.digest() == digest and index.audit() == []


def test_cli_forget_where_takes_the_full_language(tmp_path, capsys):
    path = tmp_path / "p.sqlite"
    metadata = [{"tier": t, "lang": lang} for t, lang in [(1, "en"), (2, "de"), (3, "en"), (4, "fr"), (5, "en")]] + [None]
    X = _vectors(len(metadata), 2)
    ids = [f"c{i}" for i in range(len(metadata))]
    with ExampleIndex.open_or_create(path, k=2, seed=0) as index:
        index.add(X, list(range(len(metadata))), ids=ids, metadata=metadata)
    where = {"$or": [{"tier": {"$gte": 4}}, {"$and": [{"lang": "en"}, {"tier": {"$lt": 2}}]}]}
    assert main(["forget", str(path), "--where", json.dumps(where)]) == 0
    gone = [i for i, m in zip(ids, metadata) if matches(where, m)]
    assert gone == ["c0", "c3", "c4"]
    keep = [j for j, i in enumerate(ids) if i not in gone]
    fresh = ExampleIndex(k=2, seed=0)
    fresh.add(X[keep], keep, ids=[ids[j] for j in keep], metadata=[metadata[j] for j in keep])
    with ExampleIndex.open(path) as index:
        assert index.digest() == fresh.digest() and sorted(index.ids) == sorted(ids[j] for j in keep)
    capsys.readouterr()
    assert main(["forget", str(path), "--where", '{"tier": {"$between": [1, 2]}}']) == 2
    assert "unsupported operator '$between' on field 'tier'" in capsys.readouterr().err
