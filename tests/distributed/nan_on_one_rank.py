"""Run by tests/distributed/test_nonfinite_rank.py under torchrun with 2 CPU processes (gloo): rank 1 gets a NaN
loss at step 3, rank 0 a finite one. Each rank writes what it raised to ``$OUT/rank<r>.txt``."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.distributed as dist

from rerank_align.training.common import NonFiniteLossError, RerankTrainerMixin


def main() -> int:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    trainer = RerankTrainerMixin()
    trainer.state = SimpleNamespace(global_step=0)
    out = Path(os.environ["OUT"])
    message = "no error"
    for step in range(5):
        trainer.state.global_step = step
        loss = torch.tensor(float("nan") if (rank == 1 and step == 2) else 0.5)
        try:
            trainer.check_finite(loss, {"example_ids": [f"r{rank}s{step}"]})
        except NonFiniteLossError as e:
            message = str(e)
            break
    dist.barrier()  # both ranks must get here: a rank still waiting in the next step would hang
    (out / f"rank{rank}.txt").write_text(message + "\n")
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
