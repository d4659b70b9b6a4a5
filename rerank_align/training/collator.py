"""Group collator: records → one flat batch of (query, doc) pairs plus (B, G) group tensors.

The collator tokenises through the scoring contract's ``PairEncoder`` (token ids cached per text), so the trainer
scores exactly what ``Reranker`` scores.
"""

from __future__ import annotations

import random
from typing import Any

import torch
from torch.utils.data import Dataset

from rerank_align.scoring.encode import PairEncoder


class RecordDataset(Dataset):
    def __init__(self, records: list[dict]) -> None:
        self.records = records

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> dict:
        return {"idx": i, "record": self.records[i]}


class GroupCollator:
    """Builds groups of ``group_size``: the record's first positive, then up to ``group_size - 1`` negatives.

    Negatives beyond what fits are sampled with a RNG seeded by ``(seed, record index)``, so a record always yields
    the same group (resumed runs see the same data). Groups with fewer candidates are padded and masked.
    Labels are the record's ``labels`` (graded) when present, else 1 for the positive and 0 for negatives.
    With ``in_batch`` every query is also scored against the other groups' documents (``in_batch_mask``).
    """

    def __init__(
        self, encoder: PairEncoder, group_size: int, *, seed: int = 0, in_batch: bool = False
    ) -> None:
        self.encoder = encoder
        self.group_size = group_size
        self.seed = seed
        self.in_batch = in_batch

    def group(self, idx: int, rec: dict) -> tuple[list[dict], list[float], list[float] | None]:
        pos = rec["positives"][0]
        negs = list(range(len(rec["negatives"])))
        k = self.group_size - 1
        if len(negs) > k:
            negs = sorted(random.Random(self.seed * 1_000_003 + idx).sample(negs, k))
        docs = [pos] + [rec["negatives"][j] for j in negs]
        if "labels" in rec:
            n_pos = len(rec["positives"])
            labels = [rec["labels"][0]] + [rec["labels"][n_pos + j] for j in negs]
        else:
            labels = [1.0] + [0.0] * len(negs)
        teacher = [rec["scores"][d["id"]] for d in docs] if "scores" in rec else None
        return docs, labels, teacher

    def __call__(self, items: list[dict]) -> dict[str, Any]:
        B, G = len(items), self.group_size
        mask = torch.zeros(B, G, dtype=torch.bool)
        labels = torch.zeros(B, G)
        teacher = torch.zeros(B, G)
        has_teacher = True
        queries, docs, ids = [], [], []
        for b, item in enumerate(items):
            rec = item["record"]
            d, y, t = self.group(item["idx"], rec)
            n = len(d)
            mask[b, :n] = True
            labels[b, :n] = torch.tensor(y)
            if t is None:
                has_teacher = False
            else:
                teacher[b, :n] = torch.tensor(t)
            queries.extend([rec["query"]] * n)
            docs.extend(d)
            ids.append(rec.get("qid", str(item["idx"])))
        if self.in_batch:
            # Every query against the real documents of the *other* groups: (B, (B-1)*G) extra negatives,
            # appended after the group pairs (cost: B-1 times the group pairs).
            ib_mask = torch.zeros(B, (B - 1) * G, dtype=torch.bool)
            starts = [0]
            for b in range(B):
                starts.append(starts[-1] + int(mask[b].sum()))
            for b, item in enumerate(items):
                col = 0
                for other in range(B):
                    if other == b:
                        continue
                    n = starts[other + 1] - starts[other]
                    ib_mask[b, col : col + n] = True
                    queries.extend([item["record"]["query"]] * n)
                    docs.extend(docs[starts[other] : starts[other + 1]])
                    col += G
        batch: dict[str, Any] = self.encoder.collate(self.encoder.encode(queries, docs))
        if self.in_batch:
            batch["in_batch_mask"] = ib_mask
        batch["group_mask"] = mask
        batch["labels"] = labels
        if has_teacher:
            batch["teacher_scores"] = teacher
        batch["example_ids"] = ids
        return batch
