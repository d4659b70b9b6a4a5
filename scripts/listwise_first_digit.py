"""What a generating listwise model prefers at the first answer position, with numeric identifiers on a tokenizer
that writes one digit per token (SmolLM2, Llama, Mistral, Qwen): ``[1]`` and ``[10]`` share the pieces ``[`` and
``1``, so the first digit ``1`` carries two candidates' mass and greedy decoding picks it whenever the model has no
preference; the next piece (``]`` or ``0``) then chooses between the first and the tenth input slot.

    python scripts/listwise_first_digit.py N MODEL_DIR [MODEL_DIR ...]

For the first N judged SciFact test claims of eval/suites/smollm2_listwise_scifact.yaml, with the candidates the
evaluator reranks (its own data path: BM25 top-10 in BM25 order), prints per model: the mean share of each first
digit after ``[``, how often ``1`` is the most likely one, and after ``[1`` the share of ``0`` against ``]`` (> 0.5:
greedy names the tenth slot first). One forward per list gives both distributions.
"""

from __future__ import annotations

import sys

import torch

from rerank_align.evaluation.config import load_suite
from rerank_align.evaluation.runner import prepare_collection
from rerank_align.scoring.listwise_prompt import ListPromptBuilder
from rerank_align.scoring.reranker import Reranker


def main(n: int, paths: list[str]) -> None:
    suite = load_suite("eval/suites/smollm2_listwise_scifact.yaml")
    col = prepare_collection(suite.collections[0], suite, limit_queries=n)
    lists = [
        (col.queries[q], [col.corpus[d] for d, _ in col.run[q][: col.depth]])
        for q in col.qids
        if col.run.get(q)
    ]
    for path in paths:
        rr = Reranker.from_pretrained(path, dtype="float32")
        tok, model = rr.tokenizer, rr.model.eval()
        builder = ListPromptBuilder(tok, rr.contract)
        digits = [tok.convert_tokens_to_ids(str(k)) for k in range(10)]
        bracket, close = tok.convert_tokens_to_ids("["), tok.convert_tokens_to_ids("]")
        share, one_first, ten = torch.zeros(10), 0, []
        with torch.no_grad():
            for query, docs in lists:
                ids = builder.build(query, docs).input_ids + [bracket, digits[1]]
                logits = model(input_ids=torch.tensor([ids])).logits[0, -2:].float()
                p, nxt = logits[0].softmax(-1), logits[1].softmax(-1)  # after "[", after "[1"
                share += p[digits] / p[digits].sum()
                one_first += int(p[digits].argmax()) == 1
                ten.append(float(nxt[digits[0]] / (nxt[digits[0]] + nxt[close])))
        print(
            f"{path}: {len(lists)} lists; first digit, mean share "
            + " ".join(f"{k}:{v / len(lists):.3f}" for k, v in enumerate(share))
            + f"; '1' most likely in {one_first}/{len(lists)}; after '[1', P('0') / (P('0') + P(']')) mean"
            f" {sum(ten) / len(ten):.3f}, > 0.5 in {sum(t > 0.5 for t in ten)}/{len(ten)}"
        )


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2:])
