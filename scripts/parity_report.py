"""Print max |training-path score − Reranker.from_pretrained(saved).score()| per kind (the scoring contract's
parity, issue 2). Tiny models are built in code; every case also runs with batch sizes 1, 2, 7 after reloading.

    .venv/bin/python scripts/parity_report.py
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    import torch

    from rerank_align.scoring import PairEncoder, Reranker, ScoringContract, build_contract, score_forward
    from rerank_align.scoring.modeling import load_model, load_tokenizer
    from rerank_align.testing.tiny import build_tiny_bert, build_tiny_causal

    query = "kalomi suta"
    docs = [
        "kalomi vota ripe suta kalomi",
        {"title": "Tides", "text": "the moon pulls water " * 30},
        "zuga fine",
        "short",
    ]
    tmp = Path(tempfile.mkdtemp())
    causal, bert = build_tiny_causal(tmp / "causal"), build_tiny_bert(tmp / "bert")
    cases = {
        "yesno qwen3 (log_softmax_yes)": (causal, "causal", dict(kind="yesno", template="qwen3")),
        "yesno bge-gemma (yes_logit)": (causal, "causal", dict(kind="yesno", template="bge-gemma")),
        "yesno plain (logit_diff)": (causal, "causal", dict(kind="yesno", template="plain")),
        "head causal (last token)": (causal, "causal", dict(kind="head")),
        "head encoder ([CLS])": (bert, "encoder", dict(kind="head")),
    }
    print("| kind | max abs diff, training path (left/right padding) vs from_pretrained (batch 1/2/7) |")
    print("|---|---|")
    for name, (base, arch, fields) in cases.items():
        tok = load_tokenizer(str(base))
        contract = build_contract(
            tok,
            base_model=str(base),
            architecture=arch,
            max_query_length=8,
            max_document_length=24,
            max_length=96,
            **fields,
        )
        torch.manual_seed(0)
        model = load_model(str(base), contract).eval()
        train_scores = []
        for side in ("right",) if arch == "encoder" else ("left", "right"):
            c = ScoringContract.from_dict({**contract.to_dict(), "padding_side": side})
            enc = PairEncoder(tok, c)
            with torch.no_grad():
                train_scores.append(
                    score_forward(model, c, enc.collate(enc.encode([query] * len(docs), docs))).scores
                )
        out = tmp / name.split()[0] / name.split()[1]
        Reranker(model, tok, contract).save_pretrained(out)
        worst = max((a - b).abs().max().item() for a in train_scores for b in train_scores)
        for bs in (1, 2, 7):
            served = torch.tensor(
                Reranker.from_pretrained(out, batch_size=bs, autocast_dtype="float32").score(query, docs)
            )
            worst = max(worst, max((served - t).abs().max().item() for t in train_scores))
        print(f"| {name} | {worst:.2e} |")


if __name__ == "__main__":
    main()
