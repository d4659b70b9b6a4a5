"""In-training ranking evaluation: rerank a dev run with the live model and measure it with ir-measures."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import TrainerCallback

from rerank_align.config.recipe import EvalConfig
from rerank_align.data import load_beir
from rerank_align.data.bm25 import first_stage
from rerank_align.evaluation.metrics import evaluate, final_order, mean
from rerank_align.evaluation.mrb import as_collection
from rerank_align.scoring.contract import ScoringContract
from rerank_align.scoring.reranker import Reranker


@contextlib.contextmanager
def scoring_mode(model: Any, *, keep_train_mode: bool) -> Iterator[None]:
    """Eval mode for scoring, restored afterwards. With ``keep_train_mode`` (4-bit models on CPU, where an
    eval-mode forward breaks the next training step) the model stays in train mode with every dropout set to 0,
    which computes the same function as eval mode for these models."""
    was_training = model.training
    saved: list[tuple[torch.nn.Dropout, float]] = []
    if keep_train_mode:
        for m in model.modules():
            if isinstance(m, torch.nn.Dropout):
                saved.append((m, m.p))
                m.p = 0.0
    else:
        model.eval()
    try:
        yield
    finally:
        for m, p in saved:
            m.p = p
        model.train(was_training)


def rerank_and_measure(
    reranker: Any,
    collection: Any,
    run: dict[str, list[tuple[str, float]]],
    qids: list[str],
    *,
    depth: int,
    metrics: list[str],
    rel: int = 1,
) -> dict[str, float]:
    """Mean of each metric over ``qids`` after reranking the top ``depth`` of ``run`` (ties: first-stage order)."""
    queries, docs, spans = [], [], []
    for q in qids:
        cands = [(d, s) for d, s in run.get(q, []) if d in collection.corpus][:depth]
        spans.append((q, cands, len(docs)))
        queries.extend([collection.queries[q]] * len(cands))
        docs.extend(collection.corpus[d] for d, _ in cands)
    if (
        getattr(reranker, "listwise", None) is not None
    ):  # listwise kind: rank whole lists, score = n - position
        scores = np.zeros(len(docs), dtype=np.float32)
        lists = [docs[o : o + len(c)] for _, c, o in spans]
        for (_, c, o), res in zip(spans, reranker.rank_lists([collection.queries[q] for q in qids], lists)):
            for pos, i in enumerate(res.order):
                scores[o + i] = len(c) - pos
    else:
        scores = reranker.score_pairs(queries, docs)
    ranking = {q: final_order(c, scores[o : o + len(c)].tolist(), depth) for q, c, o in spans}
    qrels = {q: collection.qrels[q] for q in qids}
    per_query = evaluate(ranking, qrels, metrics, rel=rel)
    return {m: mean(per_query[m]) for m in metrics}


def make_ranking_eval(
    cfg: EvalConfig,
    contract: ScoringContract,
    tokenizer: Any,
    *,
    keep_train_mode: bool = False,
    batch_size: int = 64,
    precision: str = "auto",
) -> Callable[[Any], dict[str, float]]:
    """A callable that reranks ``cfg``'s dev run with the model being trained and returns its metric.

    ``precision``: the training run's resolved precision, so the dev metric is measured as the model trains."""
    run_path = cfg.run
    if (Path(cfg.beir) / "mrb.json").is_file():  # an MRB task folder (docs/mrb.md): images on either side
        collection = as_collection(cfg.beir, cfg.split)
        run_path = run_path or str(Path(cfg.beir) / "candidates.run")
    else:
        collection = load_beir(cfg.beir, split=cfg.split)
    run = first_stage(collection, run_path, depth=cfg.depth)
    qids = sorted(q for q in collection.qrels if q in run)[: cfg.max_queries]

    def evaluate_model(model: Any) -> dict[str, float]:
        rr = Reranker(model, tokenizer, contract, batch_size=batch_size, live=True, autocast_dtype=precision)
        with scoring_mode(model, keep_train_mode=keep_train_mode):
            return rerank_and_measure(
                rr, collection, run, qids, depth=cfg.depth, metrics=[cfg.metric], rel=cfg.rel
            )

    return evaluate_model


class LogAtTrainBegin(TrainerCallback):
    """Log metrics measured before training (``eval.at_start``) at step 0, after the trackers have opened their
    writers (this callback is added after the reporting callbacks, so it runs after their ``on_train_begin``)."""

    def __init__(self, trainer: Any, metrics: dict[str, float]) -> None:
        self.trainer, self.metrics = trainer, metrics

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.metrics:
            self.trainer.log(dict(self.metrics))
            self.metrics = {}
