"""Every malformed recipe, suite, data file and model folder is answered by exactly one line naming the place and
the problem, exit status 2, and nothing half-written left behind.

A case is either a reader called on the input (the library API), or a command line run in process through
``rerank_align.cli.main`` (``Cli``), with its outputs pointed into a fresh temporary folder. For both, the harness
records the message, the exit status (readers: what the CLI's one error handler returns for the exception) and
every file created or changed, in the temporary folder and in tests/data/malformed.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from rerank_align.data import read_corpus, read_qrels, read_queries, read_run
from rerank_align.data.records import read_group_records, read_list_records, read_preference_records
from rerank_align.evaluation.config import load_suite
from rerank_align.evaluation.mrb import load_mrb_task

MALFORMED = Path(__file__).parent / "data" / "malformed"


@dataclass(frozen=True)
class Cli:
    """A command line; ``argv(input_path, tmp)`` builds it (outputs go under ``tmp``)."""

    argv: Callable[[Path, Path], list[str]]


def train(p: Path, tmp: Path) -> list[str]:
    return ["train", str(p)]


def train_folder(p: Path, tmp: Path) -> list[str]:
    """``train <folder>/recipe.yaml`` with its paths made absolute and the output under ``tmp``."""
    return [
        "train",
        str(p / "recipe.yaml"),
        f"model.name_or_path={MALFORMED / 'weights_truncated'}",
        f"data.train_file={p / 'groups.jsonl'}",
        f"training.output_dir={tmp / 'out'}",
    ]


def evaluate(p: Path, tmp: Path) -> list[str]:
    return ["eval", str(p / "suite.yaml" if p.is_dir() else p), "--out", str(tmp / "eval"), "--no-progress"]


def merge(p: Path, tmp: Path) -> list[str]:
    return ["merge", str(p), "--out", str(tmp / "merged")]


def export(p: Path, tmp: Path) -> list[str]:
    return ["export", str(p), "--to", "seq-cls", "--out", str(tmp / "exported")]


def contrastive_groups(path: Path) -> list[dict]:
    """What ``train`` reads for a contrastive method (group_size >= 2): every group needs a negative."""
    return read_group_records(path, min_negatives=1)


# input → (reader or command line, fragments that must all appear in the one-line message)
CASES: dict[str, tuple[Callable | Cli, list[str]]] = {
    # recipes (through `rerank-align train`: fails before any model loads)
    "unknown_training_key.yaml": (Cli(train), ["training.learnig_rate", "did you mean 'learning_rate'"]),
    "typo_section.yaml": (Cli(train), ["modle", "did you mean 'model'"]),
    "bad_enum.yaml": (Cli(train), ["model.kind", "'yesnoo'", "did you mean 'yesno'"]),
    "out_of_range.yaml": (Cli(train), ["method.group_size", "minimum 1"]),
    "wrong_type.yaml": (Cli(train), ["model.max_length", "expected an integer"]),
    "listwise_on_encoder.yaml": (Cli(train), ["method.name", "encoder"]),
    "contrastive_group_of_one.yaml": (Cli(train), ["method.group_size", "group_size >= 2"]),
    "qlora_zero3_storage.yaml": (Cli(train), ["quantization.quant_storage", "ZeRO-3", "bfloat16"]),
    "qlora_without_peft.yaml": (Cli(train), ["quantization.load_in_4bit", "peft.enabled"]),
    "missing_model.yaml": (Cli(train), ["model", "required key is missing"]),
    "invalid_yaml.yaml": (Cli(train), ["invalid_yaml.yaml:3", "invalid YAML"]),
    "unknown_loss.yaml": (Cli(train), ["method.loss", "did you mean 'infonce'"]),
    "loss_arg_typo.yaml": (Cli(train), ["method.loss_args.temprature", "did you mean 'temperature'"]),
    "base_cycle.yaml": (Cli(train), ["base_cycle.yaml", "inherits from itself"]),
    "yesno_on_encoder.yaml": (Cli(train), ["model.kind", "kind: head"]),
    "no_training_data.yaml": (Cli(train), ["data.train_file", "no training data"]),
    "distill_without_teacher.yaml": (Cli(train), ["data.teacher_files", "margin_mse"]),
    "training_wrong_type.yaml": (Cli(train), ["training.learning_rate", "expected a number", "'fast'"]),
    "training_bool_wrong_type.yaml": (
        Cli(train),
        ["training.gradient_checkpointing", "expected true or false"],
    ),
    "resume_wrong_type.yaml": (Cli(train), ["training.resume_from_checkpoint", "checkpoint path or true"]),
    "recipe_duplicate_section.yaml": (
        Cli(train),
        ["recipe_duplicate_section.yaml:7", "duplicate key 'training'", "first at line 3", "again at line 7"],
    ),
    "recipe_duplicate_key.yaml": (
        Cli(train),
        ["recipe_duplicate_key.yaml:5", "duplicate key 'learning_rate'", "first at line 4"],
    ),
    "recipe_alias_bomb.yaml": (Cli(train), ["recipe_alias_bomb.yaml:", "aliases expand to more than"]),
    "recipe_not_utf8.yaml": (Cli(train), ["recipe_not_utf8.yaml", "not valid UTF-8"]),
    "recipe_is_folder.yaml": (Cli(train), ["recipe_is_folder.yaml", "is a folder, not a recipe file"]),
    # eval suites
    "suite_duplicate_key.yaml": (
        load_suite,
        ["suite_duplicate_key.yaml:6", "duplicate key 'baseline'", "line 5"],
    ),
    "suite_not_utf8.yaml": (Cli(evaluate), ["suite_not_utf8.yaml", "not valid UTF-8 (byte 13)"]),
    "suite_alias_bomb.yaml": (load_suite, ["suite_alias_bomb.yaml:", "aliases expand to more than"]),
    "eval_missing_system": (Cli(evaluate), ["systems.mine.path", "no_such_model", "not found"]),
    "eval_system_is_file": (Cli(evaluate), ["systems.mine.path", "model.bin is a file"]),
    "eval_corrupt_weights": (
        Cli(evaluate),
        ["weights_truncated/model.safetensors", "corrupt weights", "truncated"],
    ),
    "eval_bad_contract": (Cli(evaluate), ["eval_bad_contract/model/reranker.json", "unreadable JSON"]),
    "eval_run_disjoint": (
        Cli(evaluate),
        ["run.trec", "no candidates for any of the 2 judged queries", "'Q1'"],
    ),
    "eval_qrels_header_only": (Cli(evaluate), ["qrels/test.tsv", "no judgments", "only a header"]),
    # training records
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
    "group_not_object.jsonl": (read_group_records, ["group_not_object.jsonl:1", "expected a JSON object"]),
    "group_unknown_key.jsonl": (
        read_group_records,
        ["group_unknown_key.jsonl:1", "unknown keys ['negativs']", "negatives"],
    ),
    "group_duplicate_negative.jsonl": (
        read_group_records,
        ["group_duplicate_negative.jsonl:2", "negatives[1] repeats negatives[0]"],
    ),
    "group_positive_also_negative.jsonl": (
        read_group_records,
        ["group_positive_also_negative.jsonl:1", "negatives[0] repeats positives[0]", "id 'd1'"],
    ),
    "group_no_positive.jsonl": (
        read_group_records,
        ["group_no_positive.jsonl:1", "'positives' needs at least 1"],
    ),
    "group_no_negative.jsonl": (
        contrastive_groups,
        ["group_no_negative.jsonl:2", "0 negatives", "at least 1"],
    ),
    "list_bad_ranking.jsonl": (read_list_records, ["list_bad_ranking.jsonl:1", "permutation of 0..2"]),
    "list_labels_wrong_type.jsonl": (
        read_list_records,
        ["list_labels_wrong_type.jsonl:1", "'labels' must be 3 finite numbers"],
    ),
    "preference_identical.jsonl": (
        read_preference_records,
        ["preference_identical.jsonl:1", "same permutation"],
    ),
    "preference_index_out_of_range.jsonl": (
        read_preference_records,
        ["preference_index_out_of_range.jsonl:1", "'chosen' must be a doc index in 0..1"],
    ),
    # BEIR files and runs
    "run_wrong_columns.run": (read_run, ["run_wrong_columns.run:2", "6 columns"]),
    "run_nan_score.run": (read_run, ["run_nan_score.run:1", "not finite"]),
    "run_duplicate_doc.run": (read_run, ["run_duplicate_doc.run:2", "appears twice"]),
    "run_rank_not_integer.run": (read_run, ["run_rank_not_integer.run:2", "'first' must be an integer"]),
    "run_empty.run": (read_run, ["run_empty.run", "no candidates", "empty"]),
    "qrels_bad_grade.tsv": (read_qrels, ["qrels_bad_grade.tsv:2", "'very'"]),
    "qrels_wrong_columns.tsv": (
        read_qrels,
        ["qrels_wrong_columns.tsv:2", "3 tab-separated columns", "got 2"],
    ),
    "qrels_empty.tsv": (read_qrels, ["qrels_empty.tsv", "no judgments"]),
    "qrels_header_only.tsv": (read_qrels, ["qrels_header_only.tsv", "no judgments", "only a header"]),
    "qrels_fractional_grade.tsv": (read_qrels, ["qrels_fractional_grade.tsv:3", "'0.5' is not an integer"]),
    "qrels_nan_grade.tsv": (read_qrels, ["qrels_nan_grade.tsv:1", "'nan' is not an integer"]),
    "qrels_conflicting_grades.tsv": (
        read_qrels,
        ["qrels_conflicting_grades.tsv:3", "judged twice", "different grades (1, 2)"],
    ),
    "corpus_duplicate_id.jsonl": (read_corpus, ["corpus_duplicate_id.jsonl:2", "duplicate document id"]),
    "corpus_text_not_string.jsonl": (read_corpus, ["corpus_text_not_string.jsonl:2", "must be strings"]),
    "corpus_empty.jsonl": (read_corpus, ["corpus_empty.jsonl", "no documents"]),
    "queries_empty_text.jsonl": (read_queries, ["queries_empty_text.jsonl:1", "no text"]),
    "queries_duplicate_id.jsonl": (read_queries, ["queries_duplicate_id.jsonl:3", "duplicate query id 'q1'"]),
    "queries_blank_lines.jsonl": (read_queries, ["queries_blank_lines.jsonl", "no queries"]),
    # MRB task folders
    "mrb_image_undecodable": (
        load_mrb_task,
        ["mrb_image_undecodable/corpus.jsonl:2", "'images/d2.png' cannot be decoded", "re-save it"],
    ),
    "mrb_image_missing": (load_mrb_task, ["mrb_image_missing/corpus.jsonl:2", "'images/d2.png' not found"]),
    # model folders (merge / export check them before any weights load or anything is written)
    "adapter_wrong_base": (
        Cli(merge),
        ["adapter_wrong_base", "names base 'some-org/other-model'", "'my-org/tiny-base'", "--base"],
    ),
    "weights_truncated": (
        Cli(export),
        ["weights_truncated/model.safetensors", "corrupt weights", "need 137 bytes, the file has 93"],
    ),
    "train_corrupt_base": (Cli(train_folder), ["weights_truncated/model.safetensors", "corrupt weights"]),
    "weights_bad_header": (Cli(merge), ["weights_bad_header/model.safetensors", "corrupt weights", "header"]),
}


@dataclass
class Outcome:
    rc: int
    message: str
    lines: int
    traceback: bool
    left: list[str]


def _files(root: Path) -> dict[str, str]:
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(root.rglob("*"))
    }


def run_case(name: str, tmp: Path) -> Outcome:
    """Run one case; ``left`` lists every path it created or changed (in ``tmp`` and in the corpus)."""
    from rerank_align.cli import main
    from rerank_align.errors import report_error

    how, _ = CASES[name]
    path = MALFORMED / name
    before_src, before_tmp = _files(MALFORMED), _files(tmp)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        if isinstance(how, Cli):
            rc = main(how.argv(path, tmp))
        else:
            try:
                how(path)
                rc = 0
            except Exception as e:  # noqa: BLE001 - every exception must become one line
                rc = report_error(e)
    text = err.getvalue()
    errors = [line for line in text.splitlines() if line.startswith("error: ")]
    after_src, after_tmp = _files(MALFORMED), _files(tmp)
    left = [f"tmp/{k}" for k in after_tmp if before_tmp.get(k) != after_tmp[k]]
    left += [f"malformed/{k}" for k in after_src if before_src.get(k) != after_src[k]]
    left += [f"malformed/{k} (deleted)" for k in before_src if k not in after_src]
    return Outcome(
        rc=rc,
        message=errors[-1][len("error: ") :] if errors else "(no error)",
        lines=len(errors),
        traceback="Traceback" in text,
        left=left,
    )


def test_every_malformed_input_has_a_case():
    assert sorted(p.name for p in MALFORMED.iterdir()) == sorted(CASES)
    assert len(CASES) >= 60


@pytest.mark.parametrize("name", sorted(CASES))
def test_one_line_error_exit_2_nothing_left(name, tmp_path):
    out = run_case(name, tmp_path)
    assert out.rc == 2, out
    assert out.lines == 1 and not out.traceback, out
    for frag in CASES[name][1]:
        assert frag in out.message, (frag, out.message)
    assert out.left == [], out.left  # nothing half-written: no output folder, no empty score cache


def test_debug_flag_adds_the_traceback(tmp_path, capsys):
    from rerank_align.cli import main

    assert main(["--debug", "train", str(MALFORMED / "recipe_duplicate_section.yaml")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("error: ")


def test_recipes_check_fails_every_malformed_recipe(capsys):
    from rerank_align.cli import main

    rc = main(["recipes", str(MALFORMED), "--check"])
    captured = capsys.readouterr()
    assert rc == 2
    listed = captured.out.splitlines()
    yaml_paths = [p for p in MALFORMED.rglob("*.yaml") if "accelerate" not in p.parts]
    # train_corrupt_base/recipe.yaml is a valid recipe: its base model's weights are what is broken
    valid = [line for line in listed if "train_corrupt_base" in line]
    assert len(listed) == len(yaml_paths) and len(valid) == 1 and " ok " in valid[0]
    assert all("FAIL" in line for line in listed if line not in valid)
    n = len(yaml_paths)
    assert captured.err.startswith(f"error: {n - 1} of {n} recipes failed")


def test_alias_bomb_fails_fast_without_memory_growth():
    """10 levels of 10 aliases: 10^10 nodes if expanded (PyYAML's objects share them, but merging or copying the
    recipe would expand it). Refused from the node graph alone."""
    import resource
    import time

    import yaml

    from rerank_align.config.yaml_io import load_yaml

    text = (MALFORMED / "recipe_alias_bomb.yaml").read_text()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    with pytest.raises(yaml.YAMLError, match="aliases expand to more than"):
        load_yaml(text)
    assert time.perf_counter() - t0 < 1.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50 * 1024  # KiB
