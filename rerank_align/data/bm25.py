"""BM25 first stage with bm25s, configured like the runs in ../shared/data (Anserini's defaults).

``method="lucene"``, k1=0.9, b=0.4, bm25s's English stop words, the PyStemmer Snowball English stemmer, over
``title + " " + text``. Documents scoring 0 are left out, so a query can get fewer than ``k`` candidates.
"""

from __future__ import annotations

from collections.abc import Iterable

from rerank_align.data.beir import Collection, Run, read_run


def bm25_run(
    collection: Collection,
    query_ids: Iterable[str] | None = None,
    *,
    k: int = 100,
    k1: float = 0.9,
    b: float = 0.4,
) -> Run:
    import bm25s
    import numpy as np
    import Stemmer

    stemmer = Stemmer.Stemmer("english")
    doc_ids = list(collection.corpus)
    texts = [f"{d['title']} {d['text']}".strip() for d in collection.corpus.values()]
    retriever = bm25s.BM25(method="lucene", k1=k1, b=b)
    retriever.index(
        bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False), show_progress=False
    )
    qids = list(query_ids) if query_ids is not None else list(collection.queries)
    run: Run = {}
    if not qids:
        return run
    q_tokens = bm25s.tokenize(
        [collection.queries[q] for q in qids], stopwords="en", stemmer=stemmer, show_progress=False
    )
    results, scores = retriever.retrieve(q_tokens, k=min(k, len(doc_ids)), show_progress=False, n_threads=1)
    for qid, idx, sc in zip(qids, results, scores):
        keep = np.asarray(sc) > 0
        run[qid] = [(doc_ids[i], float(s)) for i, s in zip(np.asarray(idx)[keep], np.asarray(sc)[keep])]
    return run


def first_stage(collection: Collection, run_path: str | None, *, depth: int) -> Run:
    """The candidates of every judged query: the given TREC run, or BM25 (bm25s, as above) when there is none."""
    if run_path:
        return read_run(run_path)
    return bm25_run(collection, list(collection.qrels), k=depth)
