"""Preference builders: from samples (farthest by nDCG), from qrels, pointwise; all valid docs/design.md §2 records; the
sampler draws real permutations from a listwise model; IRPO items are the identifiers' tokens."""

from __future__ import annotations

from rerank_align.data.records import validate_preference
from rerank_align.listwise.preference import (
    gains_of,
    ndcg,
    pointwise_preferences,
    preferences_from_qrels,
    preferences_from_samples,
)

REC = {
    "qid": "q1",
    "query": "about suta",
    "docs": [{"text": "kalomi"}, {"text": "suta fine"}, {"text": "suta suta"}, {"text": "rika"}],
    "ranking": [2, 1, 0, 3],
    "labels": [0.0, 1.0, 2.0, 0.0],
}


def test_samples_builder_rejects_the_sample_farthest_from_the_teacher_by_ndcg():
    samples = [[2, 1, 0, 3], [1, 2, 3, 0], [0, 3, 1, 2], [3, 1, 2, 0]]
    (p,) = preferences_from_samples([REC], [samples])
    assert p["chosen"] == [2, 1, 0, 3]
    assert p["rejected"] == [0, 3, 1, 2]  # lowest nDCG of the samples that differ from the chosen order
    gains = gains_of(REC)
    assert ndcg(p["rejected"], gains) == min(ndcg(s, gains) for s in samples[1:])
    validate_preference(p, "built")


def test_samples_builder_without_labels_uses_the_teacher_positions_and_falls_back():
    rec = {k: v for k, v in REC.items() if k != "labels"}
    (p,) = preferences_from_samples([rec], [[[2, 1, 0, 3]] * 3])  # every sample equals the teacher
    assert p["rejected"] == [0, 1, 2, 3]  # the first-stage order
    g = gains_of(rec)
    assert g[2] > g[1] > g[0] > g[3]


def test_qrels_and_pointwise_builders():
    (p,) = preferences_from_qrels([REC])
    assert (p["chosen"], p["rejected"]) == ([2, 1, 0, 3], [0, 1, 2, 3])
    ideal = dict(REC, ranking=[0, 1, 2, 3])
    assert preferences_from_qrels([ideal])[0]["rejected"] == [3, 2, 1, 0]
    pts = pointwise_preferences([REC], pairs_per_query=3, seed=0)
    assert len(pts) == 3
    for q in pts:
        validate_preference(q, "built")
        assert REC["labels"][q["chosen"]] > REC["labels"][q["rejected"]]


def test_sampled_permutations_are_permutations_and_vary(tiny_causal):
    import torch

    from rerank_align.listwise.preference import sample_permutations
    from rerank_align.scoring import Reranker
    from rerank_align.scoring.listwise import ListwiseRanker

    rr = Reranker.from_base(str(tiny_causal), kind="listwise", device="cpu", max_length=512)
    ranker = ListwiseRanker(rr.model, rr.tokenizer, rr.contract)
    torch.manual_seed(0)
    (perms,) = sample_permutations(ranker, [REC["query"]], [REC["docs"]], k=6, temperature=2.0)
    assert len(perms) == 6
    # an untrained model writes no identifiers: every sample is repaired to a valid permutation (the first-stage
    # order); the learnability script samples from a briefly trained model, whose samples differ
    assert all(sorted(p) == [0, 1, 2, 3] for p in perms)


def test_irpo_items_are_the_identifier_tokens(tiny_causal):
    from rerank_align.scoring import Reranker
    from rerank_align.scoring.listwise_prompt import ListPromptBuilder
    from rerank_align.training.list_preference_trainer import identifier_items

    rr = Reranker.from_base(str(tiny_causal), kind="listwise", device="cpu", max_length=512)
    b = ListPromptBuilder(rr.tokenizer, rr.contract)
    ids, items = identifier_items(b, [2, 0, 1])
    assert len(ids) == len(items) and items[-1] == -1  # eos is no item
    text = {c: rr.tokenizer.decode([t for t, i in zip(ids, items) if i == c]) for c in range(3)}
    for c in range(3):
        assert f"[{c + 1}]" in text[c].replace(" ", "")
    assert [i for i in items if i >= 0][0] == 2  # the generated order


def test_written_preference_records_read_back(tmp_path):
    import pytest

    from rerank_align.data.records import read_preference_records
    from rerank_align.errors import RerankAlignError
    from rerank_align.listwise.preference import write_preference_records

    recs = preferences_from_qrels([REC]) + pointwise_preferences([REC], pairs_per_query=2)
    write_preference_records(recs, str(tmp_path / "p.jsonl"))
    back = read_preference_records(tmp_path / "p.jsonl")
    assert [(r["chosen"], r["rejected"]) for r in back] == [(r["chosen"], r["rejected"]) for r in recs]
    bad = dict(recs[0], rejected=recs[0]["chosen"])
    with pytest.raises(RerankAlignError):
        write_preference_records([bad], str(tmp_path / "bad.jsonl"))
    assert not (tmp_path / "bad.jsonl").exists()  # nothing half-written
