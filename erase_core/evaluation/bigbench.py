"""BIG-bench task loader (JSON tasks: ``<data_dir>/<task>/task.json``).

Where a task is read from, the first that applies:

1. ``load_task(name, data_dir=...)`` (``--data-dir`` on the command line);
2. the environment variable ``ERASE_BIGBENCH_DIR``;
3. the tasks bundled with the package (:data:`BUNDLED_TASKS`, under :data:`BUNDLED_DIR`: the
   demo's and ``erase bench``'s CPU tasks, unmodified, with BIG-bench's Apache-2.0 license and a
   NOTICE beside them);
4. a user cache, ``$XDG_CACHE_HOME/erase/bigbench`` (default ``~/.cache/erase/bigbench``), for
   task folders the user copies there.

A directory named in 1 or 2 is the only place looked at (a task missing there is an error, not
a silent fall-back to other data). Nothing is ever downloaded or written: other tasks come from
a directory of BIG-bench task folders, e.g. ``bigbench/benchmark_tasks`` of a clone of
https://github.com/google/BIG-bench.

Task names are BIG-bench folder names (``intent_recognition``); a subtask of a task with
subtasks is named ``task/subtask`` (``abstract_narrative_understanding/4_distractors``).
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import ERASEError

__all__ = [
    "BUNDLED_DIR",
    "BUNDLED_TASKS",
    "BigBenchError",
    "BigBenchTask",
    "ENV_VAR",
    "GROUP_BY",
    "MalformedTaskError",
    "TaskNotFoundError",
    "available_tasks",
    "default_cache_dir",
    "example_groups",
    "input_context",
    "load_task",
    "load_task_file",
    "parse_task",
    "validate_task_name",
]

ENV_VAR = "ERASE_BIGBENCH_DIR"
#: The BIG-bench task files shipped inside the package (``<BUNDLED_DIR>/<task>/task.json``).
BUNDLED_DIR = Path(__file__).resolve().with_name("bigbench_data")
#: The bundled tasks: ``erase demo``'s and ``erase bench``'s (and ``erase unlearn``'s) defaults.
BUNDLED_TASKS = ("intent_recognition", "sports_understanding", "object_counting")

_NAME_PART = r"[A-Za-z0-9][A-Za-z0-9_\-]*"
_TASK_NAME = re.compile(rf"^{_NAME_PART}(?:/{_NAME_PART})?$")


class BigBenchError(ERASEError):
    """Base class of the BIG-bench loader's errors (an ERASEError, hence a ValueError)."""


class MalformedTaskError(BigBenchError):
    """A task.json that is not valid JSON or lacks what a task needs."""


class TaskNotFoundError(BigBenchError, FileNotFoundError):
    """The task is in none of the places looked at; the message says how to provide it."""


# ----------------------------------------------------------------------------- task model


@dataclass(frozen=True)
class BigBenchTask:
    """One BIG-bench JSON task.

    ``examples`` are dicts with ``idx`` (position in task.json), ``input`` and ``target``
    (str; the first of ``targets``, all acceptable answers). Multiple-choice examples (those
    with ``target_scores``) also carry ``choices`` (list[str], file order), ``target_scores``,
    ``correct_choice`` (the choice with the highest score, the first on a tie),
    ``correct_index`` and ``correct_choices`` (all choices with the highest score). Their
    ``target`` is the task's own ``target`` when it gives one, else ``correct_choice``.
    """

    name: str
    description: str
    examples: list[dict[str, Any]]
    metadata: dict[str, Any] = field(default_factory=dict, repr=False)
    source: Path | None = None

    @property
    def is_multiple_choice(self) -> bool:
        """True when every example has ``choices`` (``target_scores`` in task.json)."""
        return bool(self.examples) and all("choices" in ex for ex in self.examples)

    def __len__(self) -> int:
        return len(self.examples)

    def split(self, n_pool: int, n_test: int | None = None, seed: int = 0,
              group_by: str = "context") -> tuple[list[dict], list[dict]]:
        """Disjoint, seeded ``(pool, test)`` samples of the examples (copies), whole groups at a time.

        Examples are grouped by :func:`example_groups` (``group_by``), so that examples sharing
        a context (a story, a definition, identical inputs) never straddle pool and test. The
        groups are ordered by their first example in a permutation drawn from
        ``numpy.random.default_rng(seed)``; each group goes to the pool while it fits in
        ``n_pool``, else to the test set while it fits in ``n_test`` (all the rest when
        ``None``), else is left out. With only single-example groups this is the plain
        permutation split: the first ``n_pool`` examples, then the next ``n_test``. With larger
        groups the pool or test set may come out a few examples short.
        """
        n = len(self.examples)
        for label, value in (("n_pool", n_pool), ("n_test", n_test), ("seed", seed)):
            if value is None and label == "n_test":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ERASEError(f"{label} must be a non-negative integer; got {value!r}")
        if n_test is None:
            n_test = n - n_pool
        if n_pool + n_test > n:
            raise ERASEError(
                f"task {self.name!r} has {n} examples; cannot take n_pool={n_pool} + n_test={n_test}"
            )
        group_of = example_groups(self.examples, group_by)
        perm = np.random.default_rng(int(seed)).permutation(n)
        members: dict[int, list[int]] = {}
        for i in perm:
            members.setdefault(group_of[int(i)], []).append(int(i))
        pool_rows: list[int] = []
        test_rows: list[int] = []
        for rows in members.values():
            if len(pool_rows) + len(rows) <= n_pool:
                pool_rows += rows
            elif len(test_rows) + len(rows) <= n_test:
                test_rows += rows
        pool = [copy.deepcopy(self.examples[i]) for i in pool_rows]
        test = [copy.deepcopy(self.examples[i]) for i in test_rows]
        return pool, test


#: How :meth:`BigBenchTask.split` may group examples.
GROUP_BY = ("context", "input", "none")


def input_context(text: str) -> str:
    """The part of an input that states its context: everything before its last non-empty line,
    or, for a one-line input, everything before its last sentence (the whole input when it is a
    single sentence). Questions about one story or one definition share it."""
    lines = [line for line in text.strip().split("\n") if line.strip()]
    if len(lines) > 1:
        return "\n".join(lines[:-1]).strip()
    sentences = re.split(r"(?<=[.!?])\s+", text.strip())
    return " ".join(sentences[:-1]).strip() if len(sentences) > 1 else text.strip()


def example_groups(examples: list[dict[str, Any]], group_by: str = "context") -> list[int]:
    """A group number per example; a split keeps each group on one side.

    - ``"none"``: every example is its own group;
    - ``"input"``: examples with identical inputs share a group;
    - ``"context"`` (default): examples whose :func:`input_context` is the same share a group
      (a schema sentence with several questions about it, an operator's definition, a
      duplicated input), except that a context shared by more than ``sqrt(n)`` of the ``n``
      examples is taken as task-wide boilerplate (a fixed preamble, not a shared schema) and
      those examples fall back to grouping by identical input.
    """
    if group_by not in GROUP_BY:
        raise ERASEError(f"group_by must be one of {GROUP_BY}; got {group_by!r}")
    if group_by == "none":
        return list(range(len(examples)))
    inputs = [ex["input"].strip() for ex in examples]
    keys = inputs
    if group_by == "context":
        contexts = [input_context(t) for t in inputs]
        sizes: dict[str, int] = {}
        for c in contexts:
            sizes[c] = sizes.get(c, 0) + 1
        limit = math.sqrt(len(examples))
        keys = [("c", c) if sizes[c] <= limit else ("i", t) for c, t in zip(contexts, inputs)]
    number: dict[Any, int] = {}
    return [number.setdefault(key, len(number)) for key in keys]


def _parse_example(i: int, ex: Any, where: str) -> dict[str, Any]:
    if not isinstance(ex, dict):
        raise MalformedTaskError(f"{where}: example {i} is {type(ex).__name__}, expected an object")
    inp = ex.get("input")
    if not isinstance(inp, str):
        raise MalformedTaskError(f"{where}: example {i} has no string 'input'")
    raw_target = ex.get("target")
    if raw_target is None:
        targets: list[str] = []
    elif isinstance(raw_target, str):
        targets = [raw_target]
    elif isinstance(raw_target, list) and raw_target and all(isinstance(t, str) for t in raw_target):
        targets = list(raw_target)
    else:
        raise MalformedTaskError(f"{where}: example {i} has a 'target' that is not a string or list of strings")
    out: dict[str, Any] = {"idx": i, "input": inp}
    scores = ex.get("target_scores")
    if scores is not None:
        if not isinstance(scores, dict) or not scores:
            raise MalformedTaskError(f"{where}: example {i} has 'target_scores' that is not a non-empty object")
        values = []
        for choice, value in scores.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise MalformedTaskError(f"{where}: example {i}: score of choice {choice!r} is not a finite number")
            values.append(value)
        choices = list(scores.keys())
        best = max(values)
        correct = [c for c, v in zip(choices, values) if v == best]
        out["choices"] = choices
        out["target_scores"] = dict(scores)
        out["correct_choice"] = correct[0]
        out["correct_index"] = choices.index(correct[0])
        out["correct_choices"] = correct
        if not targets:
            targets = [correct[0]]
    if not targets:
        raise MalformedTaskError(f"{where}: example {i} has neither 'target' nor 'target_scores'")
    out["target"] = targets[0]
    out["targets"] = targets
    return out


def parse_task(obj: Any, name: str, *, source: Path | None = None) -> BigBenchTask:
    """Build a :class:`BigBenchTask` from the decoded JSON of a task.json."""
    where = str(source) if source is not None else f"task {name!r}"
    if not isinstance(obj, dict):
        raise MalformedTaskError(f"{where}: top level is {type(obj).__name__}, expected an object")
    if "examples" not in obj:
        hint = ""
        if "subtasks" in obj or (source is not None and _subtask_names(source.parent)):
            subs = _subtask_names(source.parent) if source is not None else []
            hint = " (it is a task with subtasks; load one as 'task/subtask'" + (
                f", e.g. {name}/{subs[0]}" if subs else ""
            ) + ")"
        raise MalformedTaskError(f"{where}: no 'examples' list{hint}")
    raw = obj["examples"]
    if not isinstance(raw, list) or not raw:
        raise MalformedTaskError(f"{where}: 'examples' must be a non-empty list")
    examples = [_parse_example(i, ex, where) for i, ex in enumerate(raw)]
    description = obj.get("description", "")
    if not isinstance(description, str):
        description = str(description)
    metadata = {k: v for k, v in obj.items() if k != "examples"}
    return BigBenchTask(name=name, description=description, examples=examples, metadata=metadata, source=source)


def _subtask_names(task_dir: Path) -> list[str]:
    try:
        return sorted(p.parent.name for p in task_dir.glob("*/task.json"))
    except OSError:
        return []


def load_task_file(path: str | os.PathLike, name: str | None = None) -> BigBenchTask:
    """Load one task.json file (``name`` defaults to its folder's name)."""
    path = Path(path)
    name = name if name is not None else path.parent.name
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TaskNotFoundError(f"{path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MalformedTaskError(f"{path}: cannot read: {exc}") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MalformedTaskError(f"{path}: not valid JSON: {exc}") from None
    return parse_task(obj, name, source=path)


# ----------------------------------------------------------------------------- locating data


def validate_task_name(name: Any) -> str:
    """Return ``name`` if it is a safe BIG-bench task name (``task`` or ``task/subtask``)."""
    if not isinstance(name, str) or not _TASK_NAME.match(name):
        raise BigBenchError(
            f"invalid BIG-bench task name {name!r}: expected a folder name made of letters, digits, "
            "'_' and '-' (or 'task/subtask'), with no path separators or '..'"
        )
    return name


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/erase/bigbench``, or ``~/.cache/erase/bigbench``."""
    base = os.environ.get("XDG_CACHE_HOME")
    root = Path(base).expanduser() if base else Path.home() / ".cache"
    return root / "erase" / "bigbench"


def _task_file(root: Path, name: str) -> Path:
    return root.joinpath(*name.split("/"), "task.json")


def _how_to_provide() -> str:
    return (
        f"The package bundles {', '.join(BUNDLED_TASKS)}. For other tasks, point --data-dir (or "
        f"data_dir=, or the environment variable {ENV_VAR}) at a directory of BIG-bench task folders "
        "laid out as <dir>/<task>/task.json, e.g. the bigbench/benchmark_tasks folder of a clone of "
        f"https://github.com/google/BIG-bench, or copy the task's folder into "
        f"{default_cache_dir()}. Programmatic BIG-bench tasks (task.py, no task.json) cannot be loaded."
    )


def load_task(name: str, data_dir: str | os.PathLike | None = None) -> BigBenchTask:
    """Load BIG-bench task ``name``.

    From ``data_dir`` when given, else from ``$ERASE_BIGBENCH_DIR`` when set (either laid out as
    ``<dir>/<task>/task.json``, only read, the only place looked at), else from the tasks bundled
    with the package, else from the user cache (:func:`default_cache_dir`). Raises
    :class:`TaskNotFoundError` saying how to provide a task found nowhere.
    """
    validate_task_name(name)
    origin = "data_dir"
    if data_dir is None and os.environ.get(ENV_VAR):
        data_dir, origin = os.environ[ENV_VAR], f"${ENV_VAR}"
    if data_dir is not None:
        root = Path(data_dir).expanduser()
        if not root.is_dir():
            raise TaskNotFoundError(
                f"BIG-bench data directory {root} ({origin}) does not exist. {_how_to_provide()}"
            )
        path = _task_file(root, name)
        if not path.is_file():
            raise TaskNotFoundError(
                f"task {name!r} not found: {path} does not exist ({origin}={root}). {_how_to_provide()}"
            )
        return load_task_file(path, name)
    for root in (BUNDLED_DIR, default_cache_dir()):
        path = _task_file(root, name)
        if path.is_file():
            return load_task_file(path, name)
    raise TaskNotFoundError(
        f"task {name!r} is not bundled with the package and not in the user cache "
        f"{default_cache_dir()}, and neither data_dir nor ${ENV_VAR} is set. {_how_to_provide()}"
    )


def available_tasks(data_dir: str | os.PathLike | None = None) -> list[str]:
    """The task names :func:`load_task` finds with this ``data_dir``, sorted (top-level folders
    holding a task.json: those of ``data_dir`` or ``$ERASE_BIGBENCH_DIR`` when either is given,
    else the bundled tasks and those in the user cache)."""
    if data_dir is None and os.environ.get(ENV_VAR):
        data_dir = os.environ[ENV_VAR]
    roots = [Path(data_dir).expanduser()] if data_dir is not None else [BUNDLED_DIR, default_cache_dir()]
    names: set[str] = set()
    for root in roots:
        if root.is_dir():
            names.update(p.parent.name for p in root.glob("*/task.json") if _TASK_NAME.match(p.parent.name))
    return sorted(names)
