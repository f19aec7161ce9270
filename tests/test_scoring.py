"""MultipleChoiceScorer: log-likelihood ranking; prefix reuse changes cost, not scores."""

from __future__ import annotations

import numpy as np
import pytest

from erase_core import ERASEError
from erase_core.scoring import MultipleChoiceScorer

PREFIX = "Q: Is the sky blue?\nA: yes\nQ: Is fire cold?\nA: no\n"
OPTIONS = [" yes", " no", " maybe not"]


def full_forward_scores(lm, text_segments, options):
    torch = lm._torch
    ids = [t for seg in text_segments for t in lm.tokenizer(seg, add_special_tokens=False)["input_ids"]]
    scores = []
    for option in options:
        oi = lm.tokenizer(option, add_special_tokens=False)["input_ids"]
        with torch.inference_mode():
            logp = torch.log_softmax(lm.model(input_ids=torch.tensor([ids + oi])).logits[0].float(), -1)
        scores.append(sum(float(logp[len(ids) - 1 + p, oi[p]]) for p in range(len(oi))))
    return np.array(scores)


def test_scores_match_a_full_forward_pass(smollm2):
    scorer = MultipleChoiceScorer(smollm2)
    question = "Q: Is water wet?\nA:"
    got = scorer.score(question, OPTIONS, prefix=PREFIX, prefix_key="fp")
    assert np.allclose(got, full_forward_scores(smollm2, [PREFIX, question], OPTIONS), atol=1e-3)
    assert scorer.choose("Q: Is ice hot?\nA:", OPTIONS, prefix=PREFIX, prefix_key="fp") in (0, 1)


def test_prefix_reuse_is_exact_and_keyed(smollm2):
    cached, plain = MultipleChoiceScorer(smollm2), MultipleChoiceScorer(smollm2, reuse_prefix=False)
    for question in ["Q: Is water wet?\nA:", "Q: Is ice hot?\nA:", "Q: Do fish swim?\nA:"]:
        a = cached.score(question, OPTIONS, prefix=PREFIX, prefix_key="fp-1")
        b = plain.score(question, OPTIONS, prefix=PREFIX, prefix_key="fp-1")
        assert np.array_equal(a, b)
    assert (cached.stats.prefix_builds, cached.stats.prefix_hits) == (1, 2)
    assert plain.stats.prefix_builds == 3 and cached.stats.tokens_processed < plain.stats.tokens_processed
    other = "Q: Is snow white?\nA: yes\n"
    cached.score("Q: Is coal white?\nA:", OPTIONS, prefix=other, prefix_key="fp-2")
    assert cached.stats.prefix_builds == 2  # a new fingerprint drops the old cache


def test_no_prefix_and_bad_input(smollm2):
    scorer = MultipleChoiceScorer(smollm2)
    assert scorer.score("The capital of France is", [" Paris", " a banana"]).argmax() == 0
    with pytest.raises(ERASEError, match="empty"):
        scorer.score("question", [])
    with pytest.raises(ERASEError, match="non-empty strings"):
        scorer.score("question", ["", " yes"])
    with pytest.raises(ERASEError, match="nothing to condition on"):
        scorer.score("", [" yes"])
