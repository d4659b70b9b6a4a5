"""`rerank-align label --beir ... --run FILE`: which (query, document) pairs get a teacher score."""

from __future__ import annotations

import json

from rerank_align.label import main as label_main


def _beir(folder):
    folder.mkdir()
    docs = [{"_id": f"d{i}", "title": "", "text": f"text {i}"} for i in range(6)]
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    queries = [{"_id": q, "text": f"query {q}"} for q in ("q1", "q2")]
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    (folder / "qrels").mkdir()
    (folder / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td0\t1\nq2\td5\t1\n")


def test_label_scores_the_run_top_depth_plus_judged_and_skips_queries_without_candidates(tmp_path):
    col = tmp_path / "col"
    _beir(col)
    # q2 is judged but absent from the run: nothing to rank it against, so it is not labelled
    run = tmp_path / "first.run"
    run.write_text("".join(f"q1 Q0 d{i} {i} {5 - i}.0 bm25\n" for i in range(1, 5)))
    out = tmp_path / "teacher.jsonl"
    rc = label_main(
        ["--teacher", f"run:{run}", "--beir", str(col), "--split", "train", "--run", str(run), "--depth", "2"]
        + ["--normalization", "none", "--out", str(out)]
    )
    assert rc in (0, None)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    labelled = {(r["qid"], r["doc_id"]) for r in rows}
    # the run's top-2 (d1, d2) and the judged d0; d3, d4 are below the depth
    assert {q for q, _ in labelled} == {"q1"}
    assert {d for _, d in labelled} == {"d0", "d1", "d2"}
