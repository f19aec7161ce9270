"""BIG-bench loader: the bundled task files, where tasks are looked for, malformed files, seeded splits."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import pytest

from erase_core._validation import ERASEError
from erase_core.evaluation import bigbench
from erase_core.evaluation.bigbench import (
    BUNDLED_DIR,
    BUNDLED_TASKS,
    ENV_VAR,
    BigBenchTask,
    MalformedTaskError,
    TaskNotFoundError,
    available_tasks,
    default_cache_dir,
    load_task,
    load_task_file,
)

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def shared_bigbench() -> Path:
    """The shared copy of BIG-bench task files (``../shared/data/bigbench`` from the repo root)."""
    path = (REPO_ROOT / ".." / "shared" / "data" / "bigbench").resolve()
    if not (path / "intent_recognition" / "task.json").is_file():
        pytest.skip(f"shared BIG-bench data not found at {path}")
    return path


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch, tmp_path):
    """No test sees the user's env var or cache."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


def write_task(root: Path, name: str, content) -> Path:
    path = root / name / "task.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- real data


def check_intent_recognition(task: BigBenchTask) -> None:
    assert task.name == "intent_recognition"
    assert task.description == "Predict the intent of an utterance"
    assert len(task) == len(task.examples) == 693
    assert task.is_multiple_choice
    first = task.examples[0]
    assert first["input"] == "Utterance: Add Sabrina Salerno to the grime instrumentals playlist."
    assert first["target"] == first["correct_choice"] == "add_to_playlist"
    assert first["choices"][first["correct_index"]] == "add_to_playlist"
    assert len(first["choices"]) == 7
    intents = {"add_to_playlist", "book_restaurant", "get_weather", "play_music",
               "search_screening_event", "search_creative_work", "rate_book"}  # fmt: skip
    for ex in task.examples:
        assert isinstance(ex["input"], str) and ex["input"]
        assert set(ex["choices"]) == intents
        assert ex["target"] in intents
        assert ex["target_scores"][ex["target"]] == max(ex["target_scores"].values())
    assert task.metadata["example_output_prefix"] == "\nIntent: "


def test_load_via_data_dir(shared_bigbench):
    task = load_task("intent_recognition", data_dir=shared_bigbench)
    check_intent_recognition(task)
    assert task.source == shared_bigbench / "intent_recognition" / "task.json"


def test_load_via_env_var(shared_bigbench, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(shared_bigbench))
    check_intent_recognition(load_task("intent_recognition"))


def test_argument_beats_env_var(shared_bigbench, monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "nowhere"))
    check_intent_recognition(load_task("intent_recognition", data_dir=str(shared_bigbench)))


def test_all_shared_tasks_parse(shared_bigbench):
    names = sorted(p.parent.name for p in shared_bigbench.glob("*/task.json"))
    assert names
    for name in names:
        task = load_task(name, data_dir=shared_bigbench)
        assert len(task) > 0
        for ex in task.examples:
            assert isinstance(ex["input"], str) and isinstance(ex["target"], str)
            assert ex["target"] == ex["targets"][0]
            if "choices" in ex:
                assert ex["correct_choice"] in ex["choices"]


def test_free_form_task_has_no_choices(shared_bigbench):
    task = load_task("word_sorting", data_dir=shared_bigbench)
    assert not task.is_multiple_choice
    assert all("choices" not in ex for ex in task.examples)


def test_a_named_dir_is_the_only_place_looked_at(tmp_path, monkeypatch):
    """A task missing from a directory the user named is an error, even a bundled one: no silent
    fall-back to other data."""
    with pytest.raises(TaskNotFoundError, match="not found"):
        load_task("intent_recognition", data_dir=tmp_path)
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    with pytest.raises(TaskNotFoundError, match=re.escape(f"${ENV_VAR}")):
        load_task("intent_recognition")
    with pytest.raises(TaskNotFoundError, match="does not exist"):
        load_task("foo", data_dir=tmp_path / "absent")
    write_task(default_cache_dir(), "foo", {"examples": [{"input": "i", "target": "t"}]})
    with pytest.raises(TaskNotFoundError):
        load_task("foo")  # $ERASE_BIGBENCH_DIR still names the only place


# ----------------------------------------------------------------------------- parsing


def test_multiple_choice_parsing(tmp_path):
    write_task(tmp_path, "mc", {
        "description": "d",
        "examples": [
            {"input": "q1", "target_scores": {"a": 0, "b": 1, "c": 0.5}},
            {"input": "q2", "target_scores": {"x": 1, "y": 1}},  # tie: first max wins
            {"input": "q3", "target": "y", "target_scores": {"x": 0, "y": 1}},
        ],
    })  # fmt: skip
    task = load_task("mc", data_dir=tmp_path)
    assert task.is_multiple_choice
    e0, e1, e2 = task.examples
    assert e0["choices"] == ["a", "b", "c"] and e0["correct_choice"] == "b" and e0["correct_index"] == 1
    assert e0["target"] == "b" and e0["idx"] == 0
    assert e1["correct_choice"] == "x" and e1["correct_choices"] == ["x", "y"]
    assert e2["target"] == "y"


def test_list_targets_and_mixed_task(tmp_path):
    write_task(tmp_path, "ff", {"examples": [
        {"input": "a", "target": ["one", "1"]},
        {"input": "b", "target_scores": {"p": 1, "q": 0}},
    ]})  # fmt: skip
    task = load_task("ff", data_dir=tmp_path)
    assert task.examples[0]["target"] == "one" and task.examples[0]["targets"] == ["one", "1"]
    assert not task.is_multiple_choice  # not every example has choices
    assert task.description == ""


@pytest.mark.parametrize(
    "content, match",
    [
        ("{not json", "not valid JSON"),
        ("", "not valid JSON"),
        ("[1, 2]", "top level"),
        ({"description": "no examples"}, "no 'examples'"),
        ({"examples": []}, "non-empty list"),
        ({"examples": {"input": "x"}}, "non-empty list"),
        ({"examples": ["x"]}, "expected an object"),
        ({"examples": [{"target": "t"}]}, "no string 'input'"),
        ({"examples": [{"input": 3, "target": "t"}]}, "no string 'input'"),
        ({"examples": [{"input": "x"}]}, "neither 'target' nor 'target_scores'"),
        ({"examples": [{"input": "x", "target": 5}]}, "'target'"),
        ({"examples": [{"input": "x", "target": []}]}, "'target'"),
        ({"examples": [{"input": "x", "target_scores": {}}]}, "target_scores"),
        ({"examples": [{"input": "x", "target_scores": ["a"]}]}, "target_scores"),
        ({"examples": [{"input": "x", "target_scores": {"a": "1"}}]}, "finite number"),
        ({"examples": [{"input": "x", "target_scores": {"a": None}}]}, "finite number"),
    ],
)
def test_malformed_task_raises_erase_error(tmp_path, content, match):
    write_task(tmp_path, "bad", content)
    with pytest.raises(ERASEError, match=match) as info:
        load_task("bad", data_dir=tmp_path)
    assert isinstance(info.value, MalformedTaskError) and isinstance(info.value, ValueError)
    assert "bad" in str(info.value)  # the message names the file


def test_non_utf8_file_is_malformed(tmp_path):
    path = tmp_path / "bin" / "task.json"
    path.parent.mkdir()
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(MalformedTaskError):
        load_task_file(path)


def test_parent_of_subtasks_points_to_subtasks(tmp_path):
    write_task(tmp_path, "parent", {"name": "parent", "description": "has subtasks"})
    write_task(tmp_path, "parent/sub_a", {"examples": [{"input": "i", "target": "t"}]})
    with pytest.raises(MalformedTaskError, match="parent/sub_a"):
        load_task("parent", data_dir=tmp_path)
    task = load_task("parent/sub_a", data_dir=tmp_path)
    assert task.name == "parent/sub_a" and len(task) == 1


@pytest.mark.parametrize(
    "name",
    ["../etc", "..", ".", "", "a/../b", "/abs", "a/b/c", "a\\b", "foo/", "/", "a b", "~user", ".hidden", None, 3],
)
def test_task_name_validation(tmp_path, name):
    write_task(tmp_path, "ok", {"examples": [{"input": "i", "target": "t"}]})
    with pytest.raises(ERASEError, match="invalid BIG-bench task name"):
        load_task(name, data_dir=tmp_path / "ok")


# ----------------------------------------------------------------------------- split


def test_split_disjoint_and_seeded(shared_bigbench):
    task = load_task("intent_recognition", data_dir=shared_bigbench)
    pool, test = task.split(100, 50, seed=7)
    assert len(pool) == 100 and len(test) == 50
    pool_ids, test_ids = {e["idx"] for e in pool}, {e["idx"] for e in test}
    assert len(pool_ids) == 100 and len(test_ids) == 50 and not pool_ids & test_ids

    again_pool, again_test = task.split(100, 50, seed=7)
    assert again_pool == pool and again_test == test
    other_pool, _ = task.split(100, 50, seed=8)
    assert [e["idx"] for e in other_pool] != [e["idx"] for e in pool]

    # copies: editing a split leaves the task alone
    pool[0]["input"] = "changed"
    assert task.examples[pool[0]["idx"]]["input"] != "changed"


def test_split_rest_and_bounds(tmp_path):
    write_task(tmp_path, "t", {"examples": [{"input": str(i), "target": "x"} for i in range(10)]})
    task = load_task("t", data_dir=tmp_path)
    pool, test = task.split(4, seed=0)
    assert len(pool) == 4 and len(test) == 6
    assert sorted(e["idx"] for e in pool + test) == list(range(10))
    assert task.split(10, 0, seed=1)[1] == []
    with pytest.raises(ERASEError, match="10 examples"):
        task.split(8, 3, seed=0)
    for bad in (-1, 1.5, True, "3"):
        with pytest.raises(ERASEError):
            task.split(bad, 1)


# ----------------------------------------------------------------------------- bundled tasks and cache


def notice_checksums() -> dict[str, str]:
    """``{task: sha256}`` as stated in the bundled NOTICE."""
    text = (BUNDLED_DIR / "NOTICE").read_text(encoding="utf-8")
    return dict(re.findall(r"^\s*([a-z_]+)/task\.json\s+sha256 ([0-9a-f]{64})\s*$", text, flags=re.M))


def test_bundled_tasks_load_with_nothing_set(monkeypatch):
    """No data_dir, no $ERASE_BIGBENCH_DIR, an empty cache: the bundled files are read."""
    assert not default_cache_dir().exists()
    task = load_task("intent_recognition")
    check_intent_recognition(task)
    assert task.source == BUNDLED_DIR / "intent_recognition" / "task.json"
    for name in BUNDLED_TASKS:
        task = load_task(name)
        assert task.source == BUNDLED_DIR / name / "task.json" and len(task) >= 600
        assert task.is_multiple_choice == (name != "object_counting")
    assert not default_cache_dir().exists()  # nothing is written
    monkeypatch.setenv(ENV_VAR, "")  # an empty variable counts as unset
    assert load_task("object_counting").source == BUNDLED_DIR / "object_counting" / "task.json"


@pytest.fixture
def shared_bigbench_optional() -> Path | None:
    path = (REPO_ROOT / ".." / "shared" / "data" / "bigbench").resolve()
    return path if path.is_dir() else None


def test_bundled_files_are_the_unmodified_ones_named_in_notice(shared_bigbench_optional):
    folders = sorted(p.name for p in BUNDLED_DIR.iterdir() if p.is_dir())
    assert folders == sorted(BUNDLED_TASKS)
    assert sorted(notice_checksums()) == sorted(BUNDLED_TASKS)
    for name, digest in notice_checksums().items():
        data = (BUNDLED_DIR / name / "task.json").read_bytes()
        assert hashlib.sha256(data).hexdigest() == digest, name
        assert b"canary GUID" in data  # BIG-bench's training-data canary is kept
        if shared_bigbench_optional is not None:
            assert data == (shared_bigbench_optional / name / "task.json").read_bytes(), name
    license_text = (BUNDLED_DIR / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    assert "END OF TERMS AND CONDITIONS" in license_text  # the whole text, not a pointer
    assert "https://github.com/google/BIG-bench" in (BUNDLED_DIR / "NOTICE").read_text(encoding="utf-8")


def test_bundled_tasks_cover_every_default():
    """What `erase demo`, `erase bench` (and --quick) and `erase unlearn` use by default is bundled."""
    from erase_core.evaluation.bench import CPU_TASKS
    from erase_core.evaluation.command import build_parser, config_from_args
    from erase_core.evaluation.unlearning import UnlearnConfig
    from erase_langchain.demo import DEFAULT_TASK

    quick = config_from_args(build_parser().parse_args(["--quick"]))
    default = config_from_args(build_parser().parse_args([]))
    unlearn = UnlearnConfig()
    needed = {DEFAULT_TASK, *CPU_TASKS, *quick.tasks, *default.tasks, unlearn.task, unlearn.ood_task}
    assert needed <= set(BUNDLED_TASKS)


def test_user_cache_comes_after_the_bundled_tasks():
    cache = default_cache_dir()
    assert cache == Path(os.environ["XDG_CACHE_HOME"]) / "erase" / "bigbench"
    write_task(cache, "foo", {"description": "mine", "examples": [{"input": "i", "target": "t"}]})
    write_task(cache, "intent_recognition", {"examples": [{"input": "i", "target": "t"}]})
    task = load_task("foo")
    assert task.description == "mine" and task.source == cache / "foo" / "task.json"
    check_intent_recognition(load_task("intent_recognition"))  # the bundled copy wins


def test_cache_falls_back_to_home(monkeypatch, tmp_path):
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / ".cache" / "erase" / "bigbench"


@pytest.mark.parametrize("where", ["nowhere", "data_dir", "env"])
def test_missing_task_says_what_to_do(tmp_path, monkeypatch, where):
    if where == "data_dir":
        call = lambda: load_task("navigate", data_dir=tmp_path)  # noqa: E731
    else:
        if where == "env":
            monkeypatch.setenv(ENV_VAR, str(tmp_path))
        call = lambda: load_task("navigate")  # noqa: E731
    with pytest.raises(TaskNotFoundError) as info:
        call()
    message = str(info.value)
    assert isinstance(info.value, FileNotFoundError) and "'navigate'" in message
    for needle in (*BUNDLED_TASKS, "--data-dir", ENV_VAR, "<dir>/<task>/task.json",
                   "bigbench/benchmark_tasks", "https://github.com/google/BIG-bench", str(default_cache_dir())):
        assert needle in message, needle


def test_no_download_path_is_left():
    for gone in ("fetch_tasks", "TaskDownloadError", "BIGBENCH_REQUIREMENT", "_download_sdist"):
        assert not hasattr(bigbench, gone), gone
    assert "import subprocess" not in Path(bigbench.__file__).read_text(encoding="utf-8")


def test_available_tasks(tmp_path, monkeypatch):
    write_task(default_cache_dir(), "foo", {"examples": [{"input": "i", "target": "t"}]})
    assert available_tasks() == sorted([*BUNDLED_TASKS, "foo"])
    write_task(tmp_path / "d", "bar", {"examples": [{"input": "i", "target": "t"}]})
    (tmp_path / "d" / "not_a_task").mkdir()
    assert available_tasks(tmp_path / "d") == ["bar"]
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "d"))
    assert available_tasks() == ["bar"]
    assert available_tasks(tmp_path / "absent") == []


# ----------------------------------------------------------------------------- group-aware split


def _plain_permutation_split(n, n_pool, n_test, seed):
    """The split before grouping: the first n_pool of a seeded permutation, then the next n_test."""
    import numpy as np

    perm = np.random.default_rng(seed).permutation(n)
    return [int(i) for i in perm[:n_pool]], [int(i) for i in perm[n_pool : n_pool + n_test]]


def test_group_split_is_the_plain_split_without_shared_contexts(tmp_path):
    write_task(tmp_path, "t", {"examples": [{"input": f"Question {i}: what is {i} plus one?", "target": str(i + 1)}
                                            for i in range(50)]})
    task = load_task("t", data_dir=tmp_path)
    assert bigbench.example_groups(task.examples) == list(range(50))
    for seed in (0, 3):
        pool, test = task.split(30, 12, seed=seed)
        assert ([e["idx"] for e in pool], [e["idx"] for e in test]) == _plain_permutation_split(50, 30, 12, seed)
        assert task.split(30, 12, seed=seed, group_by="none") == (pool, test)


def test_group_split_keeps_shared_contexts_on_one_side(tmp_path):
    # 12 stories with 3 questions each (a shared schema, as in winowhy) and 4 duplicated inputs
    examples = [{"input": f"Story {s}: Ann met Bo on day {s}.\nQuestion {q}: who met whom?", "target": f"{s}-{q}"}
                for s in range(12) for q in range(3)]
    examples += [{"input": "Same question twice?", "target": "yes"}] * 2 + [{"input": "Other?", "target": "no"}] * 2
    write_task(tmp_path, "schema", {"examples": examples})
    task = load_task("schema", data_dir=tmp_path)
    groups = bigbench.example_groups(task.examples)
    assert len(set(groups)) == 12 + 2
    assert groups[0] == groups[1] == groups[2] != groups[3]
    assert groups[36] == groups[37] and groups[38] == groups[39]
    for seed in range(8):
        pool, test = task.split(25, 10, seed=seed)
        pool_groups = {groups[e["idx"]] for e in pool}
        test_groups = {groups[e["idx"]] for e in test}
        assert not pool_groups & test_groups
        assert len(pool) <= 25 and len(test) <= 10 and len(pool) >= 23  # whole groups: at most 2 short
        assert not {e["idx"] for e in pool} & {e["idx"] for e in test}
    # without grouping the same split does straddle
    straddles = 0
    for seed in range(8):
        pool, test = task.split(25, 10, seed=seed, group_by="none")
        straddles += bool({groups[e["idx"]] for e in pool} & {groups[e["idx"]] for e in test})
    assert straddles > 0
    with pytest.raises(ERASEError, match="group_by"):
        task.split(25, 10, group_by="sentence")


def test_context_of_inputs():
    assert bigbench.input_context("Story.\nMore story.\nQuestion?") == "Story.\nMore story."
    assert bigbench.input_context("A sentence. The reason is that x.") == "A sentence."
    assert bigbench.input_context("One sentence only") == "One sentence only"


def test_task_wide_preamble_is_not_a_group():
    """A preamble shared by most inputs is boilerplate: those examples group by their whole input."""
    examples = [{"input": f"Is the argument valid? Argument number {i} goes here.", "target": "x"} for i in range(40)]
    assert bigbench.example_groups(examples) == list(range(40))
    assert bigbench.example_groups(examples, "input") == list(range(40))


def test_shared_operators_task_never_straddles(shared_bigbench):
    task = load_task("operators", data_dir=shared_bigbench)
    groups = bigbench.example_groups(task.examples)
    assert len(set(groups)) < len(task)  # operator definitions are shared by several questions
    pool, test = task.split(150, 40, seed=0)
    assert not {groups[e["idx"]] for e in pool} & {groups[e["idx"]] for e in test}
    for name in ("intent_recognition", "object_counting", "word_sorting"):
        other = load_task(name, data_dir=shared_bigbench)
        assert bigbench.example_groups(other.examples) == list(range(len(other))), name
