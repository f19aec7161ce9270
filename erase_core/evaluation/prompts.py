"""BIG-bench prompt formatting, framework-free.

A k-shot prompt is ``prefix + question``: the *prefix* (the task prefix and the k shots,
each ``input_prefix + input + output_prefix + target``, joined by the task's separator) is
the part that in-context unlearning must keep exact, and the part a KV cache can reuse when
the shots do not depend on the query; the *question* is ``input_prefix + input + answer
cue``. For multiple-choice tasks whose task.json leaves ``append_choices_to_input`` true (its
BIG-bench default), the input shown, in shots and question alike, is followed by the choices,
each after ``choice_prefix`` (default ``"\n  choice: "``), in a permutation of the sorted
choices, as BIG-bench's ``json_task`` formats it (there the permutation comes from the task's
running generator; here from a generator seeded by the input, so an example always reads the same
whichever split or prompt it lands in). Answers are scored (multiple choice) or generated after the cue, with a leading
space, as in BIG-bench's own JSON tasks.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any, Mapping, Sequence, TypeVar

import numpy as np

from .bigbench import BigBenchTask


_Format = TypeVar("_Format", bound="TaskFormat")


@dataclass(frozen=True)
class TaskFormat:
    """How BIG-bench formats a task's prompts (from its task.json, with BIG-bench's defaults).

    ``append_choices`` is False unless set: :meth:`of` sets it from the task's
    ``append_choices_to_input``, which BIG-bench takes as true when absent."""

    task_prefix: str = ""
    input_prefix: str = ""
    output_prefix: str = "\nA: "
    separator: str = "\n\n"
    append_choices: bool = False
    choice_prefix: str = "\n  choice: "

    @classmethod
    def of(cls: type[_Format], task: BigBenchTask) -> _Format:
        m = task.metadata
        return cls(
            task_prefix=m.get("task_prefix", ""),
            input_prefix=m.get("example_input_prefix", ""),
            output_prefix=m.get("example_output_prefix", "\nA: "),
            separator=m.get("few_shot_example_separator", "\n\n"),
            append_choices=bool(m.get("append_choices_to_input", True)),
            choice_prefix=m.get("choice_prefix", "\n  choice: "),
        )

    @property
    def answer_cue(self) -> str:
        """The output prefix without its trailing space (the space goes with the answer)."""
        return self.output_prefix.rstrip(" ")

    def input_text(self, example: Mapping[str, Any] | str) -> str:
        """The input as the model reads it: with the choices appended when ``append_choices``
        is set and the example has choices (a plain string is returned unchanged)."""
        if isinstance(example, str):
            return example
        text = example["input"]
        choices = example.get("choices")
        if not (self.append_choices and choices):
            return text
        rng = np.random.RandomState(zlib.crc32(text.encode("utf-8")))
        shown = [str(c) for c in rng.permutation(sorted(choices))]
        return text + self.choice_prefix + self.choice_prefix.join(shown)

    def shot(self, example: Mapping[str, Any]) -> str:
        """One solved example: input and its answer text."""
        return self.input_prefix + self.input_text(example) + self.output_prefix + answer_text(example)

    def prefix(self, shots: Sequence[Mapping[str, Any]]) -> str:
        """Task prefix and shots, ending with the separator ('' for zero-shot without a task prefix)."""
        head = self.task_prefix.rstrip("\n")
        parts = ([head] if head else []) + [self.shot(s) for s in shots]
        return self.separator.join(parts) + self.separator if parts else ""

    def question(self, example: Mapping[str, Any] | str) -> str:
        """The question after the shots: an example (its :meth:`input_text`) or an input string."""
        return self.input_prefix + self.input_text(example) + self.answer_cue

    def prompt(self, shots: Sequence[Mapping[str, Any]], example: Mapping[str, Any] | str) -> str:
        return self.prefix(shots) + self.question(example)

    def stop_strings(self) -> list[str]:
        """Where a generated answer ends: the separator's first line break, or a line break."""
        return [s for s in dict.fromkeys([self.separator.strip("\n") or "\n", "\n"]) if s]


def answer_text(example: Mapping[str, Any]) -> str:
    """The answer shown in a shot: the correct choice (multiple choice) or the first target."""
    return example.get("correct_choice") or example["target"]


def is_correct(answer: str, example: Mapping[str, Any]) -> bool:
    """BIG-bench grading: one of the correct choices, or an exact match of any target."""
    if "correct_choices" in example:
        return answer in example["correct_choices"]
    return answer.strip() in [t.strip() for t in example.get("targets", [example["target"]])]
