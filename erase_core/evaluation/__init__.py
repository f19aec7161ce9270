"""Evaluation: BIG-bench tasks, the paper's reproduction (``erase bench``), baselines and cost."""

from .bigbench import BigBenchTask, load_task

__all__ = ["BigBenchTask", "load_task"]
