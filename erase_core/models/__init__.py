"""Local models: sentence embeddings, a causal LM, and log-likelihood scoring.

Each needs the ``models`` extra (torch, transformers) and is imported on first use, so
``import erase_core`` stays light.
"""

from .embeddings import HFEmbedder, MissingExtraError, default_minilm_path
from .llm import LocalCausalLM, default_smollm2_path
from .scoring import MultipleChoiceScorer, ScorerStats

__all__ = [
    "HFEmbedder",
    "LocalCausalLM",
    "MissingExtraError",
    "MultipleChoiceScorer",
    "ScorerStats",
    "default_minilm_path",
    "default_smollm2_path",
]
