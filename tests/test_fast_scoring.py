"""Every scoring optimisation gives the plain path's scores: prefix KV reuse, bucketing, collation, bf16 autocast."""

from __future__ import annotations

import pytest
import torch

from rerank_align.scoring import PairEncoder, Reranker, ScoringContract, build_contract, score_forward
from rerank_align.scoring.modeling import load_model, load_tokenizer
from rerank_align.scoring.prefix import common_prefix_len, prefix_reuse_applies

QUERIES = ["kalomi suta", "vota ripe zuga fine kalomi"]
DOCS = [
    "kalomi vota ripe suta kalomi",
    {"title": "Tides", "text": "the moon pulls water " * 12},
    {"title": "", "text": "zuga fine"},
    "short",
    {"title": "only a title", "text": ""},
    "suta suta suta vota",
    "x",
]


def _setup(base, template, padding_side="right", max_length=96, **fields):
    tok = load_tokenizer(str(base))
    contract = build_contract(
        tok,
        base_model=str(base),
        architecture="causal",
        kind=fields.pop("kind", "yesno"),
        template=template,
        max_query_length=16,
        max_document_length=40,
        max_length=max_length,
        padding_side=padding_side,
        **fields,
    )
    torch.manual_seed(0)
    model = load_model(str(base), contract).eval()
    return model, tok, contract


def _pairs():
    qs = [q for q in QUERIES for _ in DOCS]
    ds = [d for _ in QUERIES for d in DOCS]
    return qs, ds


def _plain(model, tok, contract, qs, ds):
    """The reference: all pairs in one batch through score_forward, in input order (no sorting, no cache)."""
    enc = PairEncoder(tok, contract)
    with torch.no_grad():
        return score_forward(model, contract, enc.collate(enc.encode(qs, ds))).scores


@pytest.mark.parametrize(
    "fixture,template,padding_side,batch_sizes",
    [
        ("tiny_causal", "qwen3", "right", (1, 3, 32)),
        ("tiny_causal", "bge-gemma", "left", (3, 32)),
        ("tiny_qwen2", "plain", "left", (3,)),
    ],
)
def test_prefix_reuse_equals_plain_path(request, fixture, template, padding_side, batch_sizes):
    model, tok, contract = _setup(request.getfixturevalue(fixture), template, padding_side)
    qs, ds = _pairs()
    want = _plain(model, tok, contract, qs, ds)
    for batch_size in batch_sizes:
        rr = Reranker(model, tok, contract, batch_size=batch_size, reuse_prefix=True)
        got = torch.from_numpy(rr.score_pairs(qs, ds))
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0, msg=f"batch_size={batch_size}")


def test_prefix_reuse_head_kind_and_truncated_query(tiny_causal):
    # max_length small enough that some queries are cut (their prefix differs per document): still exact
    model, tok, contract = _setup(tiny_causal, "plain", kind="head", max_length=40)
    qs, ds = _pairs()
    want = _plain(model, tok, contract, qs, ds)
    got = torch.from_numpy(
        Reranker(model, tok, contract, batch_size=4, reuse_prefix=True).score_pairs(qs, ds)
    )
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_prefix_reuse_runs_the_prefix_once_per_query(tiny_causal):
    model, tok, contract = _setup(tiny_causal, "qwen3")
    qs, ds = _pairs()
    seen: list[tuple[int, int]] = []
    bb = model.model
    orig = bb.forward

    def spy(*args, **kwargs):
        seen.append(tuple(kwargs["input_ids"].shape))
        return orig(*args, **kwargs)

    bb.forward = spy
    Reranker(model, tok, contract, batch_size=32, reuse_prefix=True).score_pairs(qs, ds)
    prefix_runs = [s for s in seen if s[0] == 1]
    assert len(prefix_runs) == len(QUERIES)
    enc = PairEncoder(tok, contract)
    full_tokens = sum(len(f["input_ids"]) for f in enc.encode(qs, ds))
    # the template's system text + query (> 40 tokens) is computed once per query instead of once per pair
    assert sum(r * c for r, c in seen) < full_tokens - len(DOCS) * 40


def test_prefix_reuse_applies_only_to_causal_text_models(tiny_causal, tiny_bert):
    model, _, contract = _setup(tiny_causal, "qwen3")
    assert prefix_reuse_applies(contract, model)
    enc_contract = ScoringContract.from_dict(
        {**contract.to_dict(), "kind": "head", "architecture": "encoder", "formula": "head", "template": None}
    )
    assert not prefix_reuse_applies(enc_contract, model)


def test_common_prefix_len():
    assert common_prefix_len([[1, 2, 3, 4], [1, 2, 5]]) == 2
    assert common_prefix_len([[1, 2, 3], [1, 2, 3]]) == 2  # every row keeps one token
    assert common_prefix_len([[7, 2], [1, 2]]) == 0
    assert common_prefix_len([[1, 2, 3, 4, 5]]) == 4


@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_collate_matches_the_row_by_row_definition(tiny_causal, padding_side):
    _, tok, contract = _setup(tiny_causal, "qwen3", padding_side)
    enc = PairEncoder(tok, contract)
    feats = enc.encode(*_pairs())
    batch = enc.collate(feats)
    n = max(len(f["input_ids"]) for f in feats)
    for row, f in enumerate(feats):
        ids = f["input_ids"]
        fill = [tok.pad_token_id] * (n - len(ids))
        assert batch["input_ids"][row].tolist() == (fill + ids if padding_side == "left" else ids + fill)
        m = (
            [0] * (n - len(ids)) + [1] * len(ids)
            if padding_side == "left"
            else [1] * len(ids) + [0] * (n - len(ids))
        )
        assert batch["attention_mask"][row].tolist() == m


def test_encoder_bucketed_scores_equal_one_batch(tiny_bert):
    tok = load_tokenizer(str(tiny_bert))
    contract = build_contract(tok, base_model=str(tiny_bert), architecture="encoder", kind="head")
    torch.manual_seed(0)
    model = load_model(str(tiny_bert), contract).eval()
    qs, ds = _pairs()
    want = _plain(model, tok, contract, qs, ds)
    for batch_size in (5, 64):
        got = torch.from_numpy(Reranker(model, tok, contract, batch_size=batch_size).score_pairs(qs, ds))
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


@pytest.mark.parametrize("fixture", ["tiny_causal", "tiny_bert"])
def test_bf16_autocast_scores_within_bf16_rounding_of_fp32(request, fixture):
    """bf16 autocast (heads kept float32) is not 1e-4-exact: the backbone's matmuls round to bf16 (unit roundoff
    2^-8 ≈ 3.9e-3). What holds, and is checked: each score is within 3.9e-3 × max(1, max |score|) of the
    float32 score (measured: 5.5e-4 on the tiny Qwen3, 2.9e-4 on MiniLM over SciFact, docs/benchmarks.md)."""
    base = request.getfixturevalue(fixture)
    if fixture == "tiny_bert":
        tok = load_tokenizer(str(base))
        contract = build_contract(tok, base_model=str(base), architecture="encoder", kind="head")
        torch.manual_seed(0)
        model = load_model(str(base), contract).eval()
    else:
        model, tok, contract = _setup(base, "qwen3")
    qs, ds = _pairs()
    fp32 = Reranker(model, tok, contract).score_pairs(qs, ds)
    bf16 = Reranker(model, tok, contract, autocast_dtype=torch.bfloat16).score_pairs(qs, ds)
    tol = 2**-8 * max(1.0, float(abs(fp32).max()))
    assert bf16.dtype == fp32.dtype and abs(bf16 - fp32).max() <= tol
    assert abs(bf16 - fp32).max() > 0  # autocast really ran in bf16
    if fixture == "tiny_causal":
        pre = Reranker(model, tok, contract, autocast_dtype=torch.bfloat16, reuse_prefix=True).score_pairs(
            qs, ds
        )
        assert abs(pre - fp32).max() <= tol


@pytest.mark.parametrize("native", ["0", "1"])
def test_autocast_auto_follows_the_hardware(tiny_bert, monkeypatch, native):
    monkeypatch.setenv("RERANK_ALIGN_NATIVE_BF16", native)
    tok = load_tokenizer(str(tiny_bert))
    contract = build_contract(tok, base_model=str(tiny_bert), architecture="encoder", kind="head")
    rr = Reranker(load_model(str(tiny_bert), contract), tok, contract, device="cpu")  # default: auto
    assert rr.autocast_dtype == (torch.bfloat16 if native == "1" else None)
    assert rr.precision == ("bfloat16" if native == "1" else "float32")


def test_encoder_pairs_are_tokenised_once(tiny_bert):
    tok = load_tokenizer(str(tiny_bert))
    contract = build_contract(
        tok, base_model=str(tiny_bert), architecture="encoder", kind="head", max_length=24
    )
    enc = PairEncoder(tok, contract)
    qs, ds = _pairs()
    first = enc.encode(qs, ds)
    calls = []
    real = enc.tokenizer

    class Spy:
        def __call__(self, *a, **k):
            calls.append(a)
            return real(*a, **k)

    enc.tokenizer = Spy()
    again = enc.encode(qs + ["a new query"], ds + ["a new doc"])
    assert again[:-1] == first
    # only the new pair reaches the tokenizer: its two field texts (cut pass) and the one pair encoding
    assert [len(a[0]) for a in calls] == [1, 1, 1]
    fresh = PairEncoder(tok, contract).encode(qs + ["a new query"], ds + ["a new doc"])
    assert again == fresh


def test_eval_suite_reuse_prefix_option(tiny_causal):
    """``reuse_prefix: true`` on a base/reranker system reaches the Reranker and keeps its own score cache."""
    from rerank_align.evaluation.config import SuiteError, parse_suite
    from rerank_align.evaluation.systems import build_scorer

    def suite(**system):
        return parse_suite(
            {
                "collections": [{"name": "c", "path": "/tmp/c"}],
                "systems": [
                    {"name": "bm25", "type": "first_stage"},
                    {"name": "llm", "type": "base", "path": str(tiny_causal), **system},
                ],
            }
        )

    plain, _ = build_scorer(suite().systems[1])
    spec = suite(reuse_prefix=True, contract={"template": "qwen3"}).systems[1]
    scorer, info = build_scorer(spec)
    assert info["reuse_prefix"] is True and scorer.fingerprint != plain.fingerprint
    assert scorer.inner.reuse_prefix and not plain.inner.reuse_prefix
    with pytest.raises(SuiteError, match="reuse_prefix"):
        parse_suite(
            {
                "collections": [{"name": "c", "path": "/tmp/c"}],
                "systems": [{"name": "bm25", "type": "first_stage", "reuse_prefix": True}],
            }
        )
