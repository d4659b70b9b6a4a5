"""Readers of the field's training formats (FlagEmbedding, sentence-transformers, Tevatron, rank_llm) and of
Hugging Face ``datasets`` sources: rows written here the way each project documents them, read into group / list
records, with file:line or ``row N`` errors; ``rerank-align data convert`` both ways."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rerank_align.data.formats import detect_format, read_records, source_kind
from rerank_align.errors import InputError

# FlagEmbedding's fine-tuning data (examples/finetune, "Data format" + "Teacher Scores"): query, pos, neg lists,
# optional pos_scores / neg_scores from a teacher reranker, and the instruction prompt.
FLAG = [
    {
        "query": "what is a sloth",
        "pos": ["Sloths are slow arboreal mammals."],
        "neg": ["Cars are fast.", "Paris is in France."],
        "pos_scores": [4.5],
        "neg_scores": [-2.0, -3.5],
        "prompt": "Given a query A and a passage B, determine whether the passage contains an answer to the query.",
    },
    {
        "query": "capital of france",
        "pos": ["Paris is the capital of France."],
        "neg": ["Sloths are slow."],
        "pos_scores": [5.0],
        "neg_scores": [-1.0],
        "prompt": "Given a query A and a passage B, determine whether the passage contains an answer to the query.",
    },
]

# Tevatron's "Relevancy Judged Dataset" layout
TEVATRON = [
    {
        "query_id": "q7",
        "query": "what is a sloth",
        "positive_passages": [{"docid": "d1", "title": "Sloth", "text": "Sloths are slow arboreal mammals."}],
        "negative_passages": [
            {"docid": "d2", "title": "", "text": "Cars are fast."},
            {"docid": "d3", "title": "France", "text": "Paris is in France."},
        ],
    }
]

# A RankZephyr-style training conversation as rank_llm's train_rankllm.py reads it (from/value messages; the
# user prompt lists "[i] passage" lines and ends with "Search Query: ...", the answer is "[2] > [1] > ...").
RANK_LLM = {
    "conversations": [
        {"from": "system", "value": "You are RankLLM, an intelligent assistant that can rank passages."},
        {
            "from": "human",
            "value": "I will provide you with 3 passages, each indicated by a numerical identifier []. Rank the "
            "passages based on their relevance to the search query: what is a sloth.\n\n"
            "[1] Cars are fast.\n[2] Sloths are slow arboreal mammals.\n[3] Paris is in France.\n\n"
            "Search Query: what is a sloth.\nRank the 3 passages above based on their relevance to the search "
            "query. All the passages should be included and listed using identifiers, in descending order of "
            "relevance. The output format should be [] > [], e.g., [4] > [2]. Only respond with the ranking "
            "results, do not say any word or explain.",
        },
        {"from": "gpt", "value": "[2] > [3] > [1]"},
    ]
}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def texts(docs: list[dict]) -> list[str]:
    return [d["text"] for d in docs]


def test_flagembedding_rows_become_groups_with_teacher_scores(tmp_path, caplog):
    f = write_jsonl(tmp_path / "flag.jsonl", FLAG)
    assert detect_format(FLAG[0], "x") == "flagembedding"
    recs = read_records(f, "group")
    assert len(recs) == 2
    r = recs[0]
    assert r["query"] == "what is a sloth"
    assert texts(r["positives"]) == ["Sloths are slow arboreal mammals."]
    assert texts(r["negatives"]) == ["Cars are fast.", "Paris is in France."]
    # each passage's teacher score stays attached to that passage
    got = {d["text"]: r["scores"][d["id"]] for d in r["positives"] + r["negatives"]}
    assert got == {
        "Sloths are slow arboreal mammals.": 4.5,
        "Cars are fast.": -2.0,
        "Paris is in France.": -3.5,
    }
    assert "model.instruction" in caplog.text  # the prompt is reported, not silently dropped


def test_flagembedding_empty_scores_and_prompt_mean_none(tmp_path):
    # how FlagEmbedding users write rows without distillation (empty score list, empty prompt and type)
    row = {"query": "q", "pos": ["p"], "neg": ["n1", "n2"], "neg_scores": [], "prompt": "", "type": ""}
    (r,) = read_records(write_jsonl(tmp_path / "f.jsonl", [row]), "group")
    assert "scores" not in r and texts(r["negatives"]) == ["n1", "n2"]


def test_flagembedding_errors_name_the_line(tmp_path):
    bad = dict(FLAG[0], neg_scores=[1.0])  # one score for two negatives
    f = write_jsonl(tmp_path / "flag.jsonl", [FLAG[1], bad])
    with pytest.raises(InputError, match=r"flag\.jsonl:2: 'neg_scores' must be 2 finite numbers"):
        read_records(f, "group")
    f = write_jsonl(tmp_path / "typo.jsonl", [dict(FLAG[1], negs=["x"])])
    with pytest.raises(InputError, match=r"typo\.jsonl:1: unknown keys \['negs'\]"):
        read_records(f, "group", "flagembedding")
    two = [FLAG[0], dict(FLAG[1], prompt="another instruction")]
    with pytest.raises(InputError, match="2 different prompts"):
        read_records(write_jsonl(tmp_path / "two.jsonl", two), "group")


def test_tevatron_rows_keep_ids_titles_and_qid(tmp_path):
    recs = read_records(write_jsonl(tmp_path / "tev.jsonl", TEVATRON), "group")
    r = recs[0]
    assert r["qid"] == "q7"
    assert r["positives"] == [{"id": "d1", "title": "Sloth", "text": "Sloths are slow arboreal mammals."}]
    assert [d["id"] for d in r["negatives"]] == ["d2", "d3"]
    bad = [dict(TEVATRON[0], positive_passages=[])]
    with pytest.raises(InputError, match=r"tev2\.jsonl:1: 'positives' needs at least 1"):
        read_records(write_jsonl(tmp_path / "tev2.jsonl", bad), "group")


def test_sentence_transformers_ntuple_triplet_and_scores(tmp_path):
    # mine_hard_negatives(output_format="n-tuple", output_scores=True): query, positive, negative_1..n, scores
    rows = [
        {
            "query": "q one",
            "positive": "good",
            "negative_1": "bad a",
            "negative_2": "bad b",
            "scores": [0.9, 0.2, 0.1],
        }
    ]
    r = read_records(write_jsonl(tmp_path / "nt.jsonl", rows), "group")[0]
    assert texts(r["positives"]) == ["good"] and texts(r["negatives"]) == ["bad a", "bad b"]
    assert [r["scores"][d["id"]] for d in r["positives"] + r["negatives"]] == [0.9, 0.2, 0.1]
    # an (anchor, positive, negative) triplet: column names are free, position decides
    r = read_records(
        write_jsonl(tmp_path / "tr.jsonl", [{"anchor": "q", "pos": "p", "negative": "n"}]),
        "group",
        "sentence-transformers",
    )[0]
    assert (r["query"], texts(r["positives"]), texts(r["negatives"])) == ("q", ["p"], ["n"])


def test_sentence_transformers_labeled_pairs_are_grouped_by_query(tmp_path):
    rows = [
        {"query": "qa", "passage": "pa+", "label": 1},
        {"query": "qb", "passage": "pb-", "label": 0},
        {"query": "qa", "passage": "pa-", "label": 0},
        {"query": "qb", "passage": "pb+", "label": 1},
        {"query": "qa", "passage": "pa--", "label": 0},
    ]
    recs = read_records(write_jsonl(tmp_path / "lp.jsonl", rows), "group")
    assert [(r["query"], texts(r["positives"]), texts(r["negatives"])) for r in recs] == [
        ("qa", ["pa+"], ["pa-", "pa--"]),
        ("qb", ["pb+"], ["pb-"]),
    ]
    rows = [{"query": "qc", "passage": "x", "label": 0}]
    with pytest.raises(InputError, match=r"lp2\.jsonl:1: no passage of this query has a label > 0"):
        read_records(write_jsonl(tmp_path / "lp2.jsonl", rows), "group")
    # labeled-list with graded labels keeps them (positives first)
    rows = [{"query": "q", "docs": ["a", "b", "c"], "labels": [0, 2, 1]}]
    r = read_records(write_jsonl(tmp_path / "ll.jsonl", rows), "group", "sentence-transformers")[0]
    assert texts(r["positives"]) == ["b", "c"] and texts(r["negatives"]) == ["a"]
    assert r["labels"] == [2.0, 1.0, 0.0]


def test_rank_llm_conversation_becomes_a_list(tmp_path, caplog):
    f = tmp_path / "rz.json"
    f.write_text(json.dumps([RANK_LLM]))  # rank_llm's trainer json.load()s a list
    assert source_kind(f) == "list"
    r = read_records(f, "list")[0]
    assert r["query"] == "what is a sloth"
    assert texts(r["docs"]) == ["Cars are fast.", "Sloths are slow arboreal mammals.", "Paris is in France."]
    assert r["ranking"] == [1, 2, 0]
    # FIRST's alphabetic identifiers, role/content messages, an answer that omits one passage
    conv = [
        {"role": "user", "content": "[A] x one\n[B] x two\n[C] x three\nSearch Query: q.\nRank."},
        {"role": "assistant", "content": "[C] > [A]"},
    ]
    r = read_records(write_jsonl(tmp_path / "first.jsonl", [{"conversations": conv}]), "list")[0]
    assert r["ranking"] == [2, 0, 1] and r["query"] == "q"
    assert "appended in prompt order" in caplog.text
    conv[1] = {"role": "assistant", "content": "[D] > [A]"}
    with pytest.raises(InputError, match=r"bad\.jsonl:1: the answer ranks \[D\]"):
        read_records(write_jsonl(tmp_path / "bad.jsonl", [{"conversations": conv}]), "list")
    with pytest.raises(InputError, match="rank_llm data holds list records, but group records are needed"):
        read_records(f, "group")


def test_hf_datasets_saved_to_disk_parquet_and_arrow(tmp_path):
    import datasets

    tev = datasets.Dataset.from_list(TEVATRON * 3)
    dd = datasets.DatasetDict({"train": tev, "dev": tev.select([0])})
    dd.save_to_disk(str(tmp_path / "dd"))
    recs = read_records(tmp_path / "dd", "group")
    assert len(recs) == 3 and recs[0]["qid"] == "q7"
    assert len(read_records(tmp_path / "dd", "group", split="dev")) == 1
    with pytest.raises(InputError, match=r"no split 'test' \(splits: train, dev\)"):
        read_records(tmp_path / "dd", "group", split="test")
    flag = datasets.Dataset.from_list(FLAG)
    flag.to_parquet(str(tmp_path / "flag.parquet"))
    recs = read_records(tmp_path / "flag.parquet", "group")
    assert texts(recs[1]["positives"]) == ["Paris is the capital of France."]
    flag.save_to_disk(str(tmp_path / "one"))
    arrow = next((tmp_path / "one").glob("*.arrow"))
    assert len(read_records(arrow, "group")) == 2
    # a bad row of a dataset names its row index
    bad = datasets.Dataset.from_list([FLAG[0], dict(FLAG[1], pos=[])])
    bad.save_to_disk(str(tmp_path / "bad"))
    with pytest.raises(InputError, match=r"bad \[train\] row 1: 'pos' needs at least 1"):
        read_records(tmp_path / "bad", "group")


def test_uncached_hub_dataset_offline_is_one_line(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(InputError) as e:
        read_records("rerank-align-tests/no-such-dataset", "group")
    msg = str(e.value)
    assert "\n" not in msg
    assert "rerank-align-tests/no-such-dataset" in msg and "not in the local Hugging Face cache" in msg
    # a missing local path under an existing folder stays "file not found", not a hub lookup
    with pytest.raises(InputError, match="file not found"):
        read_records("tests/no-such-file", "group")


def test_beir_hub_layout_is_read(monkeypatch):
    """BeIR/<name> (configs corpus, queries) + BeIR/<name>-qrels, served here by a stand-in load_dataset."""
    import datasets

    from rerank_align.data import load_beir

    tables = {
        ("BeIR/tiny", "corpus"): {
            "corpus": [{"_id": "d1", "title": "T", "text": "x"}, {"_id": "d2", "title": "", "text": "y"}]
        },
        ("BeIR/tiny", "queries"): {"queries": [{"_id": "q1", "title": "", "text": "what"}]},
        ("BeIR/tiny-qrels", None): {"test": [{"query-id": "q1", "corpus-id": "d2", "score": 1}]},
    }

    def fake(name, config=None, **kw):
        if (name, config) not in tables:
            raise FileNotFoundError(name)
        return datasets.DatasetDict(
            {k: datasets.Dataset.from_list(v) for k, v in tables[(name, config)].items()}
        )

    monkeypatch.setattr(datasets, "load_dataset", fake)
    col = load_beir("BeIR/tiny", "test")
    assert col.corpus["d1"] == {"id": "d1", "title": "T", "text": "x"}
    assert col.queries == {"q1": "what"} and col.qrels == {"q1": {"d2": 1}}
    with pytest.raises(InputError, match=r"no split 'train'"):
        load_beir("BeIR/tiny", "train")


def test_convert_cli_both_ways(tmp_path, capsys):
    from rerank_align.cli import main

    src = write_jsonl(tmp_path / "tev.jsonl", TEVATRON)
    out = tmp_path / "groups.jsonl"
    assert main(["data", "convert", "--from", "tevatron", "--to", "jsonl", str(src), str(out)]) == 0
    assert "wrote 1 group records" in capsys.readouterr().out
    groups = read_records(out, "group", "jsonl")
    assert groups == read_records(src, "group")
    # groups with teacher scores → FlagEmbedding → back: same texts and scores
    flag_in = write_jsonl(tmp_path / "flag.jsonl", [{k: v for k, v in FLAG[0].items() if k != "prompt"}])
    proj = tmp_path / "proj.jsonl"
    assert main(["data", "convert", str(flag_in), str(proj)]) == 0
    back = tmp_path / "back.jsonl"
    assert main(["data", "convert", "--to", "flagembedding", str(proj), str(back)]) == 0
    row = json.loads(back.read_text())
    assert row == {k: v for k, v in FLAG[0].items() if k != "prompt"}
    tev_back = tmp_path / "tev_back.jsonl"
    assert main(["data", "convert", "--to", "tevatron", str(out), str(tev_back)]) == 0
    assert json.loads(tev_back.read_text()) == TEVATRON[0]
    # lists cannot become FlagEmbedding groups: one line, exit 2
    rz = write_jsonl(tmp_path / "rz.jsonl", [RANK_LLM])
    assert main(["data", "convert", "--to", "flagembedding", str(rz), str(tmp_path / "x.jsonl")]) == 2
    err = capsys.readouterr().err.strip()
    assert "list records" in err and "\n" not in err
    assert not (tmp_path / "x.jsonl").exists()
