"""Slow, loop-based reference implementations of the losses, for the tests only (never imported by the package).

Each takes the same tensors as the vectorised loss, drops padding by hand, and computes the paper's formula with
Python floats and explicit loops, one query at a time. Returns a float.
"""

from __future__ import annotations

import math


def _rows(mask, *tensors):
    """Yield, per query, the lists of real entries of each tensor."""
    for b in range(mask.shape[0]):
        idx = [g for g in range(mask.shape[1]) if bool(mask[b, g])]
        yield [[float(t[b, g]) for g in idx] for t in tensors]


def _lse(xs):
    m = max(xs)
    return m + math.log(sum(math.exp(x - m) for x in xs))


def _softplus(x):
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


def _sigmoid(x):
    return 1 / (1 + math.exp(-x))


def _mean(xs):
    return sum(xs) / len(xs) if xs else 0.0


def _softmax(xs):
    z = _lse(xs)
    return [math.exp(x - z) for x in xs]


def bce(scores, mask, labels, max_label=1.0, pos_weight=1.0):
    out = []
    for s, y in _rows(mask, scores, labels):
        for si, yi in zip(s, y):
            t = min(max(yi / max_label, 0.0), 1.0)
            out.append(-(pos_weight * t * math.log(_sigmoid(si)) + (1 - t) * math.log(1 - _sigmoid(si))))
    return _mean(out)


def binary_ce(yes, no, mask, labels, max_label=1.0):
    out = []
    for zy, zn, y in _rows(mask, yes, no, labels):
        for a, b, yi in zip(zy, zn, y):
            t = min(max(yi / max_label, 0.0), 1.0)
            py = math.exp(a) / (math.exp(a) + math.exp(b))
            out.append(-(t * math.log(py) + (1 - t) * math.log(1 - py)))
    return _mean(out)


def infonce(scores, mask, labels, temperature=1.0, in_batch=None, in_batch_mask=None):
    out = []
    for b, (s, y) in enumerate(_rows(mask, scores, labels)):
        pos = [i for i, v in enumerate(y) if v > 0]
        if not pos:
            continue
        p = pos[0]
        terms = [s[p] / temperature] + [s[i] / temperature for i, v in enumerate(y) if v <= 0]
        if in_batch is not None:
            terms += [
                float(in_batch[b, j]) / temperature
                for j in range(in_batch.shape[1])
                if bool(in_batch_mask[b, j])
            ]
        out.append(-(s[p] / temperature) + _lse(terms))
    return _mean(out)


def infonce_multi(scores, mask, labels, temperature=1.0):
    out = []
    for s, y in _rows(mask, scores, labels):
        pos = [i for i, v in enumerate(y) if v > 0]
        negs = [s[i] / temperature for i, v in enumerate(y) if v <= 0]
        if not pos:
            continue
        out.append(_mean([-(s[p] / temperature) + _lse([s[p] / temperature] + negs) for p in pos]))
    return _mean(out)


def sft_group_loss(yes, no, mask, labels):
    """L_SFT of arXiv 2510.14824: summed yes/no cross-entropy over the group, mean over queries with a positive."""
    out = []
    for zy, zn, y in _rows(mask, yes, no, labels):
        if not any(v > 0 for v in y):
            continue
        out.append(sum(_softplus(-(a - b)) if v > 0 else _softplus(a - b) for a, b, v in zip(zy, zn, y)))
    return _mean(out)


def margin_mse(scores, mask, labels, teacher):
    out = []
    for s, y, t in _rows(mask, scores, labels, teacher):
        sq = []
        for i in range(len(s)):
            for j in range(len(s)):
                if y[i] > 0 and y[j] <= 0:
                    sq.append(((s[i] - s[j]) - (t[i] - t[j])) ** 2)
        if sq:
            out.append(_mean(sq))
    return _mean(out)


def kl_distill(scores, mask, teacher, temperature=1.0, hinton_t2=False):
    out = []
    for s, t in _rows(mask, scores, teacher):
        ps = _softmax([x / temperature for x in s])
        pt = _softmax([x / temperature for x in t])
        out.append(sum(a * (math.log(a) - math.log(b)) for a, b in zip(pt, ps)))
    return _mean(out) * (temperature**2 if hinton_t2 else 1.0)


def listnet_distill(scores, mask, teacher, temperature=1.0):
    out = []
    for s, t in _rows(mask, scores, teacher):
        ps = _softmax([x / temperature for x in s])
        pt = _softmax([x / temperature for x in t])
        out.append(-sum(a * math.log(b) for a, b in zip(pt, ps)))
    return _mean(out)


def _pl_nll(ordered):
    return [(_lse(ordered[k:]) - ordered[k]) for k in range(len(ordered))]


def _gold_first_teacher_order(y, t):
    idx = list(range(len(t)))
    idx.sort(key=lambda i: -t[i])  # stable
    idx.sort(key=lambda i: -(1 if y[i] > 0 else 0))  # stable: gold first, teacher order inside
    return idx


def pld(scores, mask, labels, teacher, temperature=1.0):
    out = []
    for s, y, t in _rows(mask, scores, labels, teacher):
        order = _gold_first_teacher_order(y, t)
        alpha = _softmax([x / temperature for x in t])
        terms = _pl_nll([s[i] for i in order])
        out.append(sum(alpha[i] * term for i, term in zip(order, terms)))
    return _mean(out)


def cprd(scores, mask, labels, teacher, top_k=8):
    out = []
    for s, y, t in _rows(mask, scores, labels, teacher):
        order = _gold_first_teacher_order(y, t)
        n_gold = sum(1 for v in y if v > 0)
        ranked = order[: n_gold + top_k] if top_k > 0 else order
        remaining = list(order)
        total = 0.0
        for i in ranked:
            total += _lse([s[j] for j in remaining]) - s[i]
            remaining.remove(i)
        out.append(total)
    return _mean(out)


def ranknet(scores, mask, labels, sigma=1.0, weighting="none"):
    out = []
    for s, y in _rows(mask, scores, labels):
        ranks = [1 + sum(1 for v in y if v > yi) for yi in y]
        ls = []
        for i in range(len(s)):
            for j in range(len(s)):
                if y[i] > y[j]:
                    w = 1.0 / (ranks[i] + ranks[j]) if weighting == "first" else 1.0
                    ls.append(w * _softplus(-sigma * (s[i] - s[j])))
        if ls:
            out.append(_mean(ls))
    return _mean(out)


def listnet(scores, mask, labels, temperature=1.0, label_temperature=1.0):
    out = []
    for s, y in _rows(mask, scores, labels):
        ps = _softmax([x / temperature for x in s])
        py = _softmax([x / label_temperature for x in y])
        out.append(-sum(a * math.log(b) for a, b in zip(py, ps)))
    return _mean(out)


def _label_order(y):
    idx = list(range(len(y)))
    idx.sort(key=lambda i: -y[i])
    return idx


def listmle(scores, mask, labels):
    out = []
    for s, y in _rows(mask, scores, labels):
        out.append(sum(_pl_nll([s[i] for i in _label_order(y)])))
    return _mean(out)


def plistmle(scores, mask, labels):
    out = []
    for s, y in _rows(mask, scores, labels):
        n = len(s)
        terms = _pl_nll([s[i] for i in _label_order(y)])
        out.append(sum((2 ** (n - k) - 1) * term for k, term in enumerate(terms, start=1)))
    return _mean(out)


def lambdaloss(
    scores,
    mask,
    labels,
    weighing_scheme="ndcgLoss2PP",
    k=0,
    sigma=1.0,
    mu=10.0,
    eps=1e-10,
    ndcgloss1_pairs="all",
):
    out = []
    for s, y in _rows(mask, scores, labels):
        n = len(s)
        order = list(range(n))
        order.sort(key=lambda i: -s[i])
        ss = [s[i] for i in order]
        ys = [y[i] for i in order]
        D = [math.log2(1 + p) for p in range(1, n + 1)]
        topk = n if k <= 0 else min(k, n)
        ideal = sorted(y, reverse=True)
        max_dcg = max(sum((2 ** ideal[p] - 1) / D[p] for p in range(topk)), eps)
        G = [(2**v - 1) / max_dcg for v in ys]
        total = 0.0
        for i in range(n):
            for j in range(n):
                every_pair = weighing_scheme == "ndcgLoss1" and ndcgloss1_pairs == "all"
                if not every_pair and not ys[i] > ys[j]:
                    continue
                if k > 0 and (i >= topk or j >= topk):
                    continue
                d = abs(i - j)
                delta = abs(1 / math.log2(1 + d) - 1 / math.log2(2 + d)) if d > 0 else 0.0
                lam = abs(1 / D[i] - 1 / D[j]) * abs(G[i] - G[j])
                w = {
                    "none": 1.0,
                    "ndcgLoss1": G[i] / D[i],
                    "ndcgLoss2": delta * abs(G[i] - G[j]),
                    "lambdaRank": lam,
                    "ndcgLoss2PP": mu * delta * abs(G[i] - G[j]) + lam,
                }[weighing_scheme]
                total -= w * math.log2(max(_sigmoid(sigma * (ss[i] - ss[j])), eps))
        out.append(total)
    return _mean(out)


def wasserstein(scores, mask, labels, temperature=1.0, label_temperature=1.0):
    """W2² on the line via the quantile functions, evaluated segment by segment with explicit loops."""
    out = []
    for s, y in _rows(mask, scores, labels):
        p = _softmax([x / temperature for x in s])
        q = _softmax([x / label_temperature for x in y])
        idx = sorted(range(len(y)), key=lambda i: y[i])
        xs = [y[i] for i in idx]

        def quantile(w, u, idx=idx, xs=xs):
            c = 0.0
            for pos, i in enumerate(idx):
                c += w[i]
                if u <= c:
                    return xs[pos]
            return xs[-1]

        cuts = sorted({0.0, 1.0, *_cumsum([p[i] for i in idx]), *_cumsum([q[i] for i in idx])})
        total = 0.0
        for a, b in zip(cuts[:-1], cuts[1:]):
            if b > a:
                m = (a + b) / 2
                total += (b - a) * (quantile(p, m) - quantile(q, m)) ** 2
        out.append(total)
    return _mean(out)


def _cumsum(xs):
    out, c = [], 0.0
    for x in xs:
        c += x
        out.append(min(c, 1.0))
    return out


def irpo(policy, ref, relevance, mask, beta=0.1, item_mean="all"):
    out = []
    for pol, rf, rel in _rows(mask, policy, ref, relevance):
        n = len(pol)
        r = [a - b for a, b in zip(pol, rf)]
        ideal = sorted(range(n), key=lambda i: -rel[i])
        rank = {i: pos + 1 for pos, i in enumerate(ideal)}
        terms = []
        for i in range(n):
            if rel[i] <= 0 or n < 2:
                continue
            w = (2 ** rel[i] - 1) / math.log2(1 + rank[i])
            xs = [beta * (r[j] - r[i]) for j in range(n) if j != i]
            terms.append(w * _softplus(_lse(xs) - math.log(len(xs))))
        if terms:
            out.append(_mean(terms) if item_mean == "relevant" else sum(terms) / n)
    return _mean(out)


def plackett_luce_dpo(policy, ref, ranking, beta=0.1):
    out = []
    for b in range(ranking.shape[0]):
        items = [int(i) for i in ranking[b] if int(i) >= 0]
        if not items:
            continue
        u = [beta * (float(policy[b, i]) - float(ref[b, i])) for i in items]
        out.append(sum(_pl_nll(u)))
    return _mean(out)
