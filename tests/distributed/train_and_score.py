"""Run under ``accelerate launch``: train a recipe through ``rerank_align.train.run`` (the real entry point and its
save path), then score fixed pairs with the in-memory model on every rank (ZeRO-3 gathers each layer's shards in
the forward, so all ranks take part) and write them, with the world size, to ``<output_dir>/inmemory_scores.json``.

    accelerate launch --config_file recipes/accelerate/zero3.yaml --num_processes 2 \
        tests/distributed/train_and_score.py <recipe.yaml> [k=v ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

QUERIES = ["about suta", "about kalomi fine", "zuga"]
DOCS = ["zuga fine kalomi suta", {"title": "t", "text": "suta suta"}, "x"]


def main(argv: list[str]) -> int:
    import torch

    from rerank_align import train
    from rerank_align.config import load_recipe
    from rerank_align.scoring import Reranker

    captured = {}
    recipe = load_recipe(argv[0], argv[1:])
    builder = train.build_trainer

    def capture(*args, **kwargs):
        captured["trainer"] = trainer = builder(*args, **kwargs)
        return trainer

    train.build_trainer = capture
    summary = train.run(recipe)
    trainer = captured["trainer"]
    model = trainer.model_wrapped if trainer.model_wrapped is not None else trainer.model
    model.eval()
    rr = Reranker(model, trainer.processing_class, trainer.contract, live=True, batch_size=2)
    with torch.no_grad():
        scores = rr.score_pairs([q for q in QUERIES for _ in DOCS], DOCS * len(QUERIES)).tolist()
    if trainer.is_world_process_zero():
        out = Path(summary["output_dir"]) / "inmemory_scores.json"
        out.write_text(
            json.dumps(
                {
                    "scores": scores,
                    "world_size": trainer.args.world_size,
                    "deepspeed": trainer.is_deepspeed_enabled,
                    "fsdp": trainer.is_fsdp_enabled,
                    "steps": summary["steps"],
                }
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
