"""MultipleChoiceScorer: log-likelihood ranking; prefix reuse changes cost, not scores."""

from __future__ import annotations

import numpy as np
import pytest

from erase_core import ERASEError
from erase_core.models.scoring import MultipleChoiceScorer

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


def test_a_forget_in_another_handle_drops_the_prefix_cache(smollm2, tmp_path):
    """The prefix KV cache is keyed by the selection fingerprint: once a forget (here by another
    handle on the same store) changes the selected set, the next call rebuilds the prefix from
    the new examples and nothing computed from the forgotten one is reused."""
    from erase_core import ExampleIndex

    facts = [("Is the sky blue?", "yes"), ("Is fire cold?", "no"), ("Do birds fly?", "yes"), ("Is ice hot?", "no"),
             ("Is grass green?", "yes"), ("Can stones swim?", "no")]
    rng = np.random.default_rng(0)
    path = tmp_path / "shots.sqlite"
    index = ExampleIndex(k=2, seed=0, path=path)
    index.add(rng.standard_normal((len(facts), 8)), [{"q": q, "a": a} for q, a in facts], ids=[f"f{i}" for i in range(6)])
    other = ExampleIndex.open(path)

    def prefix():
        return "".join(f"Q: {s.payload['q']}\nA: {s.payload['a']}\n" for s in index.select())

    scorer = MultipleChoiceScorer(smollm2)
    question = "Q: Is water wet?\nA:"
    old_prefix, old_key = prefix(), index.fingerprint()
    scorer.score(question, OPTIONS, prefix=old_prefix, prefix_key=old_key)
    victim = index.select()[0]
    other.forget([victim.id])
    new_prefix, new_key = prefix(), index.fingerprint()
    assert new_key != old_key and f"Q: {victim.payload['q']}" not in new_prefix
    got = scorer.score(question, OPTIONS, prefix=new_prefix, prefix_key=new_key)
    assert scorer.stats.prefix_builds == 2 and scorer._prefix_key == new_key
    fresh = MultipleChoiceScorer(smollm2, reuse_prefix=False).score(question, OPTIONS, prefix=new_prefix, prefix_key=new_key)
    assert np.array_equal(got, fresh)
