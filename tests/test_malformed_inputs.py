"""Every malformed recipe and data file is answered by exactly one line naming the place and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from rerank_align.config import load_recipe
from rerank_align.data import read_corpus, read_qrels, read_queries, read_run
from rerank_align.data.records import read_group_records, read_list_records, read_preference_records
from rerank_align.errors import RerankAlignError
from rerank_align.evaluation.mrb import load_mrb_task


def merge_adapter(path: Path) -> None:
    """``rerank-align merge``: the base-model check runs before any weights load or anything is written."""
    from rerank_align.export.merge import merge

    merge(path, path.with_name(path.name + ".merged"))


MALFORMED = Path(__file__).parent / "data" / "malformed"

# file → (reader, fragments that must all appear in the one-line message)
CASES = {
    "unknown_training_key.yaml": (load_recipe, ["training.learnig_rate", "did you mean 'learning_rate'"]),
    "typo_section.yaml": (load_recipe, ["modle", "did you mean 'model'"]),
    "bad_enum.yaml": (load_recipe, ["model.kind", "'yesnoo'", "did you mean 'yesno'"]),
    "out_of_range.yaml": (load_recipe, ["method.group_size", "minimum 1"]),
    "wrong_type.yaml": (load_recipe, ["model.max_length", "expected an integer"]),
    "listwise_on_encoder.yaml": (load_recipe, ["method.name", "encoder"]),
    "contrastive_group_of_one.yaml": (load_recipe, ["method.group_size", "group_size >= 2"]),
    "qlora_zero3_storage.yaml": (load_recipe, ["quantization.quant_storage", "ZeRO-3", "bfloat16"]),
    "qlora_without_peft.yaml": (load_recipe, ["quantization.load_in_4bit", "peft.enabled"]),
    "missing_model.yaml": (load_recipe, ["model", "required key is missing"]),
    "invalid_yaml.yaml": (load_recipe, ["invalid_yaml.yaml:3", "invalid YAML"]),
    "unknown_loss.yaml": (load_recipe, ["method.loss", "did you mean 'infonce'"]),
    "loss_arg_typo.yaml": (load_recipe, ["method.loss_args.temprature", "did you mean 'temperature'"]),
    "base_cycle.yaml": (load_recipe, ["base_cycle.yaml", "inherits from itself"]),
    "yesno_on_encoder.yaml": (load_recipe, ["model.kind", "kind: head"]),
    "no_training_data.yaml": (load_recipe, ["data.train_file", "no training data"]),
    "distill_without_teacher.yaml": (load_recipe, ["data.teacher_files", "margin_mse"]),
    "group_truncated.jsonl": (read_group_records, ["group_truncated.jsonl:2", "invalid JSON", "truncated"]),
    "group_invalid_utf8.jsonl": (read_group_records, ["group_invalid_utf8.jsonl:1", "invalid UTF-8"]),
    "group_missing_positives.jsonl": (
        read_group_records,
        ["group_missing_positives.jsonl:1", "'positives' must be a list"],
    ),
    "group_empty_query.jsonl": (read_group_records, ["group_empty_query.jsonl:2", "'query'"]),
    "group_empty_document.jsonl": (
        read_group_records,
        ["group_empty_document.jsonl:1", "positives[0] is empty"],
    ),
    "group_wrong_type.jsonl": (
        read_group_records,
        ["group_wrong_type.jsonl:1", "'positives' must be a list"],
    ),
    "group_scores_missing.jsonl": (read_group_records, ["group_scores_missing.jsonl:1", "'2'"]),
    "list_bad_ranking.jsonl": (read_list_records, ["list_bad_ranking.jsonl:1", "permutation of 0..2"]),
    "preference_identical.jsonl": (
        read_preference_records,
        ["preference_identical.jsonl:1", "same permutation"],
    ),
    "run_wrong_columns.run": (read_run, ["run_wrong_columns.run:2", "6 columns"]),
    "run_nan_score.run": (read_run, ["run_nan_score.run:1", "not finite"]),
    "run_duplicate_doc.run": (read_run, ["run_duplicate_doc.run:2", "appears twice"]),
    "qrels_bad_grade.tsv": (read_qrels, ["qrels_bad_grade.tsv:2", "'very'"]),
    "corpus_duplicate_id.jsonl": (read_corpus, ["corpus_duplicate_id.jsonl:2", "duplicate document id"]),
    "queries_empty_text.jsonl": (read_queries, ["queries_empty_text.jsonl:1", "no text"]),
    "qrels_wrong_columns.tsv": (
        read_qrels,
        ["qrels_wrong_columns.tsv:2", "3 tab-separated columns", "got 2"],
    ),
    "run_rank_not_integer.run": (read_run, ["run_rank_not_integer.run:2", "'first' must be an integer"]),
    "corpus_text_not_string.jsonl": (read_corpus, ["corpus_text_not_string.jsonl:2", "must be strings"]),
    "group_not_object.jsonl": (read_group_records, ["group_not_object.jsonl:1", "expected a JSON object"]),
    "group_unknown_key.jsonl": (
        read_group_records,
        ["group_unknown_key.jsonl:1", "unknown keys ['negativs']", "negatives"],
    ),
    "list_labels_wrong_type.jsonl": (
        read_list_records,
        ["list_labels_wrong_type.jsonl:1", "'labels' must be 3 finite numbers"],
    ),
    "preference_index_out_of_range.jsonl": (
        read_preference_records,
        ["preference_index_out_of_range.jsonl:1", "'chosen' must be a doc index in 0..1"],
    ),
    "queries_duplicate_id.jsonl": (read_queries, ["queries_duplicate_id.jsonl:3", "duplicate query id 'q1'"]),
    "training_wrong_type.yaml": (load_recipe, ["training.learning_rate", "expected a number", "'fast'"]),
    "training_bool_wrong_type.yaml": (
        load_recipe,
        ["training.gradient_checkpointing", "expected true or false"],
    ),
    "resume_wrong_type.yaml": (load_recipe, ["training.resume_from_checkpoint", "checkpoint path or true"]),
    "mrb_image_undecodable": (
        load_mrb_task,
        ["mrb_image_undecodable/corpus.jsonl:2", "'images/d2.png' cannot be decoded", "re-save it"],
    ),
    "mrb_image_missing": (load_mrb_task, ["mrb_image_missing/corpus.jsonl:2", "'images/d2.png' not found"]),
    "adapter_wrong_base": (
        merge_adapter,
        ["adapter_wrong_base", "names base 'some-org/other-model'", "'my-org/tiny-base'", "--base"],
    ),
}


def test_every_malformed_file_has_a_case():
    assert sorted(p.name for p in MALFORMED.iterdir()) == sorted(CASES)
    assert len(CASES) >= 30


@pytest.mark.parametrize("name", sorted(CASES))
def test_one_line_error_naming_the_place(name):
    reader, fragments = CASES[name]
    with pytest.raises(RerankAlignError) as info:
        reader(MALFORMED / name)
    msg = str(info.value)
    assert "\n" not in msg
    for frag in fragments:
        assert frag in msg, (frag, msg)
    assert not (MALFORMED / f"{name}.merged").exists()  # nothing half-written


def test_cli_prints_one_line_and_exit_code_2(capsys):
    from rerank_align.cli import main

    rc = main(["recipes", str(MALFORMED), "--check"])
    out = capsys.readouterr().out
    assert rc == 1
    fails = [line for line in out.splitlines() if "FAIL" in line]
    assert len(fails) == sum(1 for n in CASES if n.endswith(".yaml"))
