"""``rerank-align mine`` with the teacher-score false-negative guard: teacher files and a reranker as teacher."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from rerank_align.cli import main


def write_beir(folder: Path) -> Path:
    """One query, positive d0, unjudged candidates d1..d5 in the run (d1 best)."""
    (folder / "qrels").mkdir(parents=True)
    docs = {f"d{i}": f"passage number {i} about sloths" for i in range(6)}
    (folder / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": k, "text": v}) + "\n" for k, v in docs.items())
    )
    (folder / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "sloths"}) + "\n")
    (folder / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td0\t1\n")
    (folder / "run.trec").write_text("".join(f"q1 Q0 d{i} {i} {10 - i} bm25\n" for i in range(1, 6)))
    return folder


def read_groups(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_teacher_file_drops_candidates_rated_near_the_positive(tmp_path, capsys):
    beir = write_beir(tmp_path / "beir")
    # the teacher rates d2 above the positive and d4 just below it: likely unjudged relevant passages
    teacher = {"d0": 5.0, "d1": 1.0, "d2": 6.0, "d3": 0.5, "d4": 4.8, "d5": 2.0}
    tf = tmp_path / "teacher.jsonl"
    tf.write_text(
        "".join(json.dumps({"qid": "q1", "doc_id": d, "score": s}) + "\n" for d, s in teacher.items())
    )
    out = tmp_path / "groups.jsonl"
    base = [
        "mine",
        str(beir),
        "--run",
        str(beir / "run.trec"),
        "--out",
        str(out),
        "--num-negatives",
        "5",
        "--overwrite",
    ]
    base += ["--sampling", "top", "--teacher-file", str(tf), "--teacher-normalization", "none"]
    assert main([*base, "--teacher-margin", "0.5"]) == 0
    (g,) = read_groups(out)
    # t_neg > t_pos - margin = 4.5 is dropped: d2 (6.0) and d4 (4.8)
    assert [d["id"] for d in g["negatives"]] == ["d1", "d3", "d5"]
    assert g["scores"] == {"d0": 5.0, "d1": 1.0, "d3": 0.5, "d5": 2.0}
    assert "false-negative guard" in capsys.readouterr().out
    assert main([*base, "--teacher-ratio", "0.3"]) == 0  # t_neg > 0.3 * 5 = 1.5 dropped: d2, d4, d5
    assert [d["id"] for d in read_groups(out)[0]["negatives"]] == ["d1", "d3"]
    # without the guard every candidate is a negative
    assert main(base[:-4]) == 0
    assert [d["id"] for d in read_groups(out)[0]["negatives"]] == ["d1", "d2", "d3", "d4", "d5"]


def test_guard_needs_teacher_scores_and_ratio_refuses_zscores(tmp_path, capsys):
    beir = write_beir(tmp_path / "beir")
    out = tmp_path / "g.jsonl"
    assert main(["mine", str(beir), "--out", str(out), "--teacher-margin", "0.1"]) == 2
    assert "need teacher scores" in capsys.readouterr().err
    tf = tmp_path / "t.jsonl"
    tf.write_text(json.dumps({"qid": "q1", "doc_id": "d0", "score": 1.0}) + "\n")
    assert (
        main(["mine", str(beir), "--out", str(out), "--teacher-file", str(tf), "--teacher-ratio", "0.9"]) == 2
    )
    assert "minmax" in capsys.readouterr().err
    assert not out.exists()


def test_reranker_as_teacher(tmp_path, tiny_causal):
    """A reranker folder scores the candidates; the guard keeps exactly the candidates its scores allow."""
    from rerank_align.scoring import Reranker
    from rerank_align.scoring.modeling import build_contract, load_tokenizer

    teacher = tmp_path / "teacher"
    shutil.copytree(tiny_causal, teacher)
    build_contract(
        load_tokenizer(str(teacher)), base_model=str(tiny_causal), kind="yesno", architecture="causal"
    ).save(teacher)
    beir = write_beir(tmp_path / "beir")
    rr = Reranker.from_pretrained(teacher)
    texts = [f"passage number {i} about sloths" for i in range(6)]
    s = dict(zip([f"d{i}" for i in range(6)], rr.score_pairs(["sloths"] * 6, [{"text": t} for t in texts])))
    # The margin sits halfway between two neighbouring gaps, never on one: the command scores the candidates in
    # its own batches, and a threshold equal to a score difference would be decided by the last bit of rounding
    # (which differs between CPUs and batch layouts).
    gaps = sorted(s[d] - s["d0"] for d in ("d1", "d2", "d3", "d4", "d5"))
    margin = -(gaps[2] + gaps[3]) / 2
    assert gaps[3] - gaps[2] > 1e-4, gaps  # far above float32 noise, so the boundary is not a near-tie
    expected = [d for d in ("d1", "d2", "d3", "d4", "d5") if s[d] <= s["d0"] - margin]
    assert 0 < len(expected) < 5
    out = tmp_path / "groups.jsonl"
    args = ["mine", str(beir), "--run", str(beir / "run.trec"), "--out", str(out), "--num-negatives", "5"]
    args += ["--sampling", "top", "--teacher", f"reranker:{teacher}", "--teacher-normalization", "none"]
    assert main([*args, "--teacher-margin", repr(float(margin))]) == 0
    (g,) = read_groups(out)
    assert [d["id"] for d in g["negatives"]] == expected
    assert g["scores"]["d0"] == pytest.approx(float(s["d0"]), abs=1e-5)
