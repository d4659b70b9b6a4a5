"""Score-trainer losses (SCORE_LOSSES): hand-computed values, slow reference on random inputs, padding / permutation
invariance, groups of different sizes, and float64 gradcheck.

Every call goes through ``call()``, which feeds the loss from a batch by parameter name exactly as a trainer does
(tensor vocabulary from the batch, everything else from ``loss_args``).
"""

from __future__ import annotations

import inspect
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rerank_align.losses import SCORE_LOSSES, TENSOR_ARGS
from rerank_align_testing import reference_losses as ref

SETTINGS = settings(max_examples=25, deadline=None)


def call(fn, batch, **loss_args):
    kwargs = {}
    for name, p in inspect.signature(fn).parameters.items():
        if name in TENSOR_ARGS:
            if name in batch:
                kwargs[name] = batch[name]
            elif p.default is inspect.Parameter.empty:
                raise KeyError(name)
    kwargs.update(loss_args)
    return fn(**kwargs)


def make_batch(seed, B=3, G=6, mode="graded", dtype=torch.float64, pad="random"):
    """Random batch with groups of different sizes (>= 2 real), padding at random positions.

    mode: "graded" (labels 0..3, >= 1 positive and >= 1 zero), "single" (exactly one positive, label 1),
    "distinct" (distinct labels 0..n-1 among the real candidates).
    """
    g = torch.Generator().manual_seed(seed)
    mask = torch.zeros(B, G, dtype=torch.bool)
    labels = torch.zeros(B, G, dtype=dtype)
    for b in range(B):
        n = int(torch.randint(2, G + 1, (1,), generator=g))
        cols = torch.randperm(G, generator=g)[:n] if pad == "random" else torch.arange(n)
        cols = cols.sort().values
        mask[b, cols] = True
        if mode == "single":
            lab = torch.zeros(n, dtype=dtype)
            lab[int(torch.randint(0, n, (1,), generator=g))] = 1
        elif mode == "distinct":
            lab = torch.randperm(n, generator=g).to(dtype)
        else:
            lab = torch.randint(0, 4, (n,), generator=g).to(dtype)
            lab[int(torch.randint(0, n, (1,), generator=g))] = 0
            if not (lab > 0).any():
                lab[int(torch.argmin(lab))] = 0
                lab[(lab == 0).nonzero()[-1]] = 2
        labels[b, cols] = lab
    batch = {
        "scores": torch.randn(B, G, generator=g, dtype=dtype) * 2,
        "teacher_scores": torch.randn(B, G, generator=g, dtype=dtype) * 2,
        "yes_logits": torch.randn(B, G, generator=g, dtype=dtype) * 2,
        "no_logits": torch.randn(B, G, generator=g, dtype=dtype) * 2,
        "labels": labels,
        "mask": mask,
    }
    # padded entries hold garbage that must never matter
    for k in ("scores", "teacher_scores", "yes_logits", "no_logits", "labels"):
        batch[k] = torch.where(mask, batch[k], torch.full_like(batch[k], 1e3))
    return batch


def ref_unified(b, temperature=1.0):
    return ref.sft_group_loss(b["yes_logits"], b["no_logits"], b["mask"], b["labels"])


# key -> (reference(batch, **args) -> float, data mode, loss_args variants, permutation invariant)
SPECS = {
    "bce": (
        lambda b, **a: ref.bce(b["scores"], b["mask"], b["labels"], **a),
        "graded",
        [{"max_label": 3.0}, {}],
        True,
    ),
    "binary_ce": (
        lambda b, **a: ref.binary_ce(b["yes_logits"], b["no_logits"], b["mask"], b["labels"], **a),
        "graded",
        [{"max_label": 3.0}],
        True,
    ),
    "infonce": (
        lambda b, **a: ref.infonce(b["scores"], b["mask"], b["labels"], **a),
        "single",
        [{}, {"temperature": 0.5}],
        True,
    ),
    "infonce_multi": (
        lambda b, **a: ref.infonce_multi(b["scores"], b["mask"], b["labels"], **a),
        "graded",
        [{}, {"temperature": 2.0}],
        True,
    ),
    "unified": (lambda b, **a: ref_unified(b), "graded", [{}], True),
    "margin_mse": (
        lambda b, **a: ref.margin_mse(b["scores"], b["mask"], b["labels"], b["teacher_scores"]),
        "graded",
        [{}],
        True,
    ),
    "kl": (
        lambda b, **a: ref.kl_distill(b["scores"], b["mask"], b["teacher_scores"], **a),
        "graded",
        [{}, {"temperature": 3.0}, {"temperature": 3.0, "hinton_t2": True}],
        True,
    ),
    "listnet_distill": (
        lambda b, **a: ref.listnet_distill(b["scores"], b["mask"], b["teacher_scores"], **a),
        "graded",
        [{"temperature": 0.7}],
        True,
    ),
    "pld": (
        lambda b, **a: ref.pld(b["scores"], b["mask"], b["labels"], b["teacher_scores"], **a),
        "graded",
        [{}, {"temperature": 2.0}],
        True,
    ),
    "cprd": (
        lambda b, **a: ref.cprd(b["scores"], b["mask"], b["labels"], b["teacher_scores"], **a),
        "single",
        [{"top_k": 2}, {"top_k": 0}, {"top_k": 1}],
        True,
    ),
    "ranknet": (
        lambda b, **a: ref.ranknet(b["scores"], b["mask"], b["labels"], **a),
        "graded",
        [{}, {"weighting": "first", "sigma": 2.0}],
        True,
    ),
    "listnet": (
        lambda b, **a: ref.listnet(b["scores"], b["mask"], b["labels"], **a),
        "graded",
        [{}, {"temperature": 0.5, "label_temperature": 2.0}],
        True,
    ),
    "listmle": (lambda b, **a: ref.listmle(b["scores"], b["mask"], b["labels"]), "distinct", [{}], True),
    "plistmle": (lambda b, **a: ref.plistmle(b["scores"], b["mask"], b["labels"]), "distinct", [{}], True),
    "lambdaloss": (
        lambda b, **a: ref.lambdaloss(b["scores"], b["mask"], b["labels"], **a),
        "graded",
        [
            {},
            {"weighing_scheme": "none"},
            {"weighing_scheme": "ndcgLoss1"},
            {"weighing_scheme": "ndcgLoss1", "ndcgloss1_pairs": "better"},
            {"weighing_scheme": "ndcgLoss1", "k": 2},
            {"weighing_scheme": "ndcgLoss2"},
            {"weighing_scheme": "lambdaRank"},
            {"weighing_scheme": "ndcgLoss2PP", "k": 3, "mu": 5.0, "sigma": 0.5},
        ],
        True,
    ),
    "wasserstein": (
        lambda b, **a: ref.wasserstein(b["scores"], b["mask"], b["labels"], **a),
        "graded",
        [{}, {"temperature": 0.5, "label_temperature": 0.7}],
        True,
    ),
}

CASES = [(k, i) for k, spec in SPECS.items() for i in range(len(spec[2]))]


def test_every_score_loss_is_specified_and_signature_follows_the_contract():
    # pg_rank samples rankings (stochastic): tested by hand on fixed samples in test_losses_pg_rank.py
    assert set(SPECS) == set(SCORE_LOSSES) - {"pg_rank"}
    simple = (float, int, bool, str)
    for key, fn in SCORE_LOSSES.items():
        params = inspect.signature(fn).parameters
        assert "mask" in params, key
        for name, p in params.items():
            if name in TENSOR_ARGS:
                continue
            assert p.kind is inspect.Parameter.KEYWORD_ONLY, (key, name)
            assert p.default is not inspect.Parameter.empty, (key, name)
            ann = p.annotation
            ok = ann in {t.__name__ for t in simple} or ann.startswith("Literal[")
            assert ok, (key, name, ann)


@pytest.mark.parametrize("key,variant", CASES)
@SETTINGS
@given(seed=st.integers(0, 10_000))
def test_matches_slow_reference(key, variant, seed):
    reference, mode, variants, _ = SPECS[key]
    args = variants[variant]
    batch = make_batch(seed, mode=mode)
    got = float(call(SCORE_LOSSES[key], batch, **args))
    want = reference(batch, **args)
    assert math.isclose(got, want, rel_tol=1e-7, abs_tol=1e-9), (got, want)


def _grads(key, batch, args):
    leaves = {k: batch[k].clone().requires_grad_(True) for k in ("scores", "yes_logits", "no_logits")}
    b = {**batch, **leaves}
    loss = call(SCORE_LOSSES[key], b, **args)
    loss.backward()
    return loss.detach(), {
        k: (v.grad if v.grad is not None else torch.zeros_like(v)) for k, v in leaves.items()
    }


@pytest.mark.parametrize("key,variant", CASES)
@pytest.mark.parametrize("garbage", [float("nan"), float("inf"), -1e30])
def test_padding_never_changes_value_or_gradient(key, variant, garbage):
    _, mode, variants, _ = SPECS[key]
    args = variants[variant]
    batch = make_batch(7, mode=mode, pad="suffix")
    # append 3 padded columns full of garbage, interleaved at the front to move real columns
    B, G = batch["mask"].shape
    perm = torch.randperm(G + 3, generator=torch.Generator().manual_seed(1))
    padded = {}
    for k, v in batch.items():
        extra = (
            torch.zeros(B, 3, dtype=torch.bool) if k == "mask" else torch.full((B, 3), garbage, dtype=v.dtype)
        )
        padded[k] = torch.cat([v, extra], dim=1)[:, perm]
    v0, g0 = _grads(key, batch, args)
    v1, g1 = _grads(key, padded, args)
    assert torch.isfinite(v1)
    torch.testing.assert_close(v1, v0, rtol=1e-10, atol=1e-12)
    inv = torch.argsort(perm)
    for k in g0:
        back = g1[k][:, inv][:, :G]
        torch.testing.assert_close(back, g0[k], rtol=1e-10, atol=1e-12)
        assert torch.all(g1[k][:, inv][:, G:] == 0)  # padding gets exactly zero gradient


@pytest.mark.parametrize("key,variant", [c for c in CASES if SPECS[c[0]][3]])
@SETTINGS
@given(seed=st.integers(0, 10_000))
def test_permutation_invariant(key, variant, seed):
    _, mode, variants, _ = SPECS[key]
    args = variants[variant]
    batch = make_batch(seed, mode=mode)
    perm = torch.randperm(batch["mask"].shape[1], generator=torch.Generator().manual_seed(seed + 1))
    permuted = {k: v[:, perm] for k, v in batch.items()}
    a = call(SCORE_LOSSES[key], batch, **args)
    b = call(SCORE_LOSSES[key], permuted, **args)
    torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


PER_PAIR = {"bce", "binary_ce"}  # pointwise losses average over pairs, the others over queries


@pytest.mark.parametrize("key", sorted(SPECS))
def test_groups_of_different_sizes(key):
    _, mode, variants, _ = SPECS[key]
    args = variants[0]
    batch = make_batch(3, B=4, G=7, mode=mode)
    whole = float(call(SCORE_LOSSES[key], batch, **args))
    singles, sizes = [], []
    for b in range(4):
        n = int(batch["mask"][b].sum())
        one = {k: v[b : b + 1][:, batch["mask"][b]] for k, v in batch.items()}
        singles.append(float(call(SCORE_LOSSES[key], one, **args)))
        sizes.append(n)
    assert len(set(sizes)) > 1
    if key in PER_PAIR:
        expected = sum(s * n for s, n in zip(singles, sizes)) / sum(sizes)
    else:
        expected = sum(singles) / len(singles)
    assert math.isclose(whole, expected, rel_tol=1e-9, abs_tol=1e-12)


@pytest.mark.parametrize("key,variant", CASES)
def test_gradcheck_float64(key, variant):
    _, mode, variants, _ = SPECS[key]
    args = variants[variant]
    batch = make_batch(11, B=2, G=4, mode=mode)
    fn = SCORE_LOSSES[key]
    names = [n for n in ("scores", "yes_logits", "no_logits") if n in inspect.signature(fn).parameters]
    inputs = tuple(batch[n].clone().requires_grad_(True) for n in names)

    def f(*xs):
        return call(fn, {**batch, **dict(zip(names, xs))}, **args)

    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-5)


def test_empty_query_rows_are_ignored():
    batch = make_batch(5, B=2, G=4, mode="single")
    batch["mask"][1] = False
    for key, fn in SCORE_LOSSES.items():
        torch.manual_seed(0)  # stochastic losses (pg_rank) then draw the same samples for row 0 both times
        loss = call(fn, batch)
        torch.manual_seed(0)
        one = call(fn, {k: v[:1] for k, v in batch.items()})
        torch.testing.assert_close(loss, one, msg=key)


# ---------------------------------------------------------------------------------------------------------------
# hand-computed formulas on tiny tensors


def T(*rows):
    return torch.tensor(rows, dtype=torch.float64)


M2 = torch.ones(1, 2, dtype=torch.bool)
M3 = torch.ones(1, 3, dtype=torch.bool)
sp = lambda x: math.log1p(math.exp(x))  # noqa: E731 softplus
sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731

HAND = [
    # bce with graded label 2 of 4 -> target 0.5
    (
        "bce",
        dict(scores=T([1.0, -2.0]), mask=M2, labels=T([2.0, 0.0])),
        {"max_label": 4.0},
        (0.5 * sp(-1.0) + 0.5 * sp(1.0) + sp(-2.0)) / 2,
    ),
    (
        "binary_ce",
        dict(yes_logits=T([1.0, 0.5]), no_logits=T([0.0, 2.0]), mask=M2, labels=T([1.0, 0.0])),
        {},
        (-math.log(sig(1.0)) - math.log(1 - sig(-1.5))) / 2,
    ),
    (
        "infonce",
        dict(scores=T([1.0, 3.0, 2.0]), mask=M3, labels=T([0.0, 1.0, 0.0])),
        {"temperature": 0.5},
        -6.0 + math.log(math.exp(2.0) + math.exp(6.0) + math.exp(4.0)),
    ),
    (
        "infonce_multi",
        dict(scores=T([1.0, 3.0, 2.0]), mask=M3, labels=T([1.0, 2.0, 0.0])),
        {},
        (math.log(1 + math.exp(1.0)) + math.log(1 + math.exp(-1.0))) / 2,
    ),
    (
        "margin_mse",
        dict(
            scores=T([2.0, 0.0, 1.0]), mask=M3, labels=T([1.0, 0.0, 0.0]), teacher_scores=T([3.0, 0.0, 0.0])
        ),
        {},
        ((2 - 3) ** 2 + (1 - 3) ** 2) / 2,
    ),
    (
        "kl",
        dict(scores=T([0.0, 0.0]), mask=M2, teacher_scores=T([math.log(3.0), 0.0])),
        {},
        0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5),
    ),
    (
        "listnet_distill",
        dict(scores=T([0.0, 0.0]), mask=M2, teacher_scores=T([math.log(3.0), 0.0])),
        {},
        math.log(2),
    ),
    # PLD: gold = item 2 (teacher lowest), then teacher order 0, 1; alphas from softmax(t)
    (
        "pld",
        dict(
            scores=T([1.0, 0.0, 2.0]), mask=M3, labels=T([0.0, 0.0, 1.0]), teacher_scores=T([2.0, 1.0, 0.0])
        ),
        {},
        None,
    ),
    (
        "cprd",
        dict(
            scores=T([1.0, 0.0, 2.0]), mask=M3, labels=T([0.0, 0.0, 1.0]), teacher_scores=T([0.0, 1.0, 5.0])
        ),
        {"top_k": 1},
        (math.log(math.e + 1 + math.e**2) - 2.0) + (math.log(1 + math.e) - 0.0),
    ),
    (
        "ranknet",
        dict(scores=T([0.0, 1.0, 2.0]), mask=M3, labels=T([2.0, 1.0, 0.0])),
        {"weighting": "first"},
        (sp(1.0) / 3 + sp(2.0) / 4 + sp(1.0) / 5) / 3,
    ),
    (
        "listnet",
        dict(scores=T([math.log(3.0), 0.0]), mask=M2, labels=T([0.0, 0.0])),
        {},
        -(0.5 * math.log(0.75) + 0.5 * math.log(0.25)),
    ),
    (
        "listmle",
        dict(scores=T([1.0, 2.0, 0.0]), mask=M3, labels=T([2.0, 1.0, 0.0])),
        {},
        math.log(math.e + math.e**2 + 1) - 1 + math.log(math.e**2 + 1) - 2,
    ),
    (
        "plistmle",
        dict(scores=T([1.0, 2.0, 0.0]), mask=M3, labels=T([2.0, 1.0, 0.0])),
        {},
        3 * (math.log(math.e + math.e**2 + 1) - 1) + 1 * (math.log(math.e**2 + 1) - 2),
    ),
    # lambdaRank weights: predicted order [1 (y=0), 0 (y=1)] -> G=(0, 1/maxDCG), maxDCG=1
    (
        "lambdaloss",
        dict(scores=T([0.0, 1.0]), mask=M2, labels=T([1.0, 0.0])),
        {"weighing_scheme": "lambdaRank"},
        -(1 - 1 / math.log2(3)) * 1.0 * math.log2(sig(-1.0)),
    ),
    (
        "wasserstein",
        dict(scores=T([0.0, 0.0, 0.0]), mask=M3, labels=T([2.0, 0.0, 0.0])),
        {"label_temperature": 1e-3},
        (2 / 3) * 4.0,
    ),
]


def _pld_hand():
    t = [2.0, 1.0, 0.0]
    a = [math.exp(x) / sum(math.exp(y) for y in t) for x in t]
    s = [1.0, 0.0, 2.0]
    order = [2, 0, 1]
    lse = lambda xs: math.log(sum(math.exp(x) for x in xs))  # noqa: E731
    return sum(a[i] * (lse([s[j] for j in order[k:]]) - s[i]) for k, i in enumerate(order))


@pytest.mark.parametrize("key,inputs,args,expected", HAND, ids=[h[0] for h in HAND])
def test_hand_computed(key, inputs, args, expected):
    if expected is None:
        expected = _pld_hand()
    got = float(call(SCORE_LOSSES[key], inputs, **args))
    assert math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-9), (got, expected)


def test_in_batch_negatives_enter_only_the_denominator():
    s, y, m = T([2.0, 1.0]), T([1.0, 0.0]), M2
    ib = T([0.5, 9.0, -1.0])
    ibm = torch.tensor([[True, False, True]])
    got = float(SCORE_LOSSES["infonce"](s, m, y, in_batch_scores=ib, in_batch_mask=ibm))
    want = -2.0 + math.log(math.exp(2) + math.exp(1) + math.exp(0.5) + math.exp(-1))
    assert math.isclose(got, want, rel_tol=1e-12)
    got_ref = ref.infonce(s, m, y, in_batch=ib, in_batch_mask=ibm)
    assert math.isclose(got, got_ref, rel_tol=1e-12)
    # gradcheck through the in-batch scores too
    f = lambda a, b: SCORE_LOSSES["infonce_multi"](a, m, y, in_batch_scores=b, in_batch_mask=ibm)  # noqa: E731
    assert torch.autograd.gradcheck(f, (s.clone().requires_grad_(), ib.clone().requires_grad_()))


def test_infonce_uses_labels_not_position():
    s = T([0.0, 3.0, 1.0])
    a = float(SCORE_LOSSES["infonce"](s, M3, T([0.0, 1.0, 0.0])))
    b = float(SCORE_LOSSES["infonce"](s, M3, T([1.0, 0.0, 0.0])))
    assert a < b


def test_plistmle_does_not_normalise_over_padding():
    """The reference bug takes the list length from the padded tensor (α(k) = 2^{G-k} - 1)."""
    s, y = T([1.0, 2.0, 0.0]), T([2.0, 1.0, 0.0])
    unpadded = float(SCORE_LOSSES["plistmle"](s, M3, y))
    sp_, yp = T([1.0, 2.0, 0.0, 0.0, 0.0]), T([2.0, 1.0, 0.0, 0.0, 0.0])
    mp = torch.tensor([[True, True, True, False, False]])
    padded = float(SCORE_LOSSES["plistmle"](sp_, mp, yp))
    assert math.isclose(padded, unpadded, rel_tol=1e-12)
    terms = [math.log(math.e + math.e**2 + 1) - 1, math.log(math.e**2 + 1) - 2, 0.0]
    buggy = sum((2 ** (5 - k) - 1) * t for k, t in enumerate(terms, start=1))
    assert not math.isclose(padded, buggy, rel_tol=1e-3)


def test_pld_teacher_logits_not_probabilities():
    s, y, t = T([0.0, 1.0, 2.0]), T([1.0, 0.0, 0.0]), T([1.0, 3.0, 0.0])
    a = float(SCORE_LOSSES["pld"](s, M3, y, t))
    b = float(SCORE_LOSSES["pld"](s, M3, y, torch.softmax(t, dim=1)))
    assert not math.isclose(a, b, rel_tol=1e-3)  # probabilities flatten the α weights: a different loss


def test_cprd_top_k_all_equals_listmle_on_teacher_order():
    batch = make_batch(4, mode="single")
    order_labels = torch.where(
        batch["labels"] > 0, torch.full_like(batch["labels"], 100.0), batch["teacher_scores"]
    )
    a = SCORE_LOSSES["cprd"](
        batch["scores"], batch["mask"], batch["labels"], batch["teacher_scores"], top_k=0
    )
    b = SCORE_LOSSES["listmle"](batch["scores"], batch["mask"], order_labels)
    torch.testing.assert_close(a, b)
