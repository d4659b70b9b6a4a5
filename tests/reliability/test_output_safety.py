"""Never destroy what the tool did not create: every command with an output refuses a target that holds someone
else's files, the input itself, a file where a folder belongs, or a place it cannot write, before any work starts.

Each scenario builds its state in a fresh folder, runs the command line in process, and reports the exit status,
the message and whether everything that was there before is still there, byte for byte.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

MALFORMED = Path(__file__).parents[1] / "data" / "malformed"


@dataclass
class Result:
    rc: int
    message: str
    kept: bool
    """Every file present before the command is unchanged, and nothing new appeared."""
    note: str


def _snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(root.rglob("*"))
    }


def _run(tmp: Path, argv: list[str], *, cwd: Path | None = None) -> Result:
    from rerank_align.cli import main

    before = _snapshot(tmp)
    err = io.StringIO()
    old = Path.cwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            rc = main(argv)
    finally:
        os.chdir(old)
    after = _snapshot(tmp)
    changed = [k for k in after if before.get(k) != after[k]] + [k for k in before if k not in after]
    lines = [x for x in err.getvalue().splitlines() if x.startswith("error: ")]
    msg = lines[-1][len("error: ") :].replace(str(tmp) + "/", "") if lines else "(no error)"
    return Result(rc, msg, not changed, "everything kept" if not changed else f"changed: {changed}")


def _user_files(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "notes.txt").write_text("the user's notes\n")


def _beir(root: Path) -> Path:
    src = MALFORMED / "eval_missing_system" / "col"
    root.mkdir(parents=True)
    for f in src.rglob("*"):
        if f.is_file():
            (root / f.relative_to(src)).parent.mkdir(parents=True, exist_ok=True)
            (root / f.relative_to(src)).write_bytes(f.read_bytes())
    return root


def merge_out_contains_source(tmp: Path) -> Result:
    """`merge outputs/run --out outputs` would replace outputs/ and with it the adapter."""
    (tmp / "outputs" / "run").mkdir(parents=True)
    (tmp / "outputs" / "run" / "adapter_config.json").write_text("{}\n")
    (tmp / "outputs" / "unrelated.txt").write_text("keep me\n")
    return _run(tmp, ["merge", str(tmp / "outputs" / "run"), "--out", str(tmp / "outputs"), "--overwrite"])


def merge_out_not_empty(tmp: Path) -> Result:
    (tmp / "adapter").mkdir()
    _user_files(tmp / "merged")
    return _run(tmp, ["merge", str(tmp / "adapter"), "--out", str(tmp / "merged")])


def export_out_is_file(tmp: Path) -> Result:
    (tmp / "model").mkdir()
    (tmp / "model.txt").write_text("a file where the output folder would go\n")
    return _run(tmp, ["export", str(tmp / "model"), "--to", "seq-cls", "--out", str(tmp / "model.txt")])


def export_out_under_a_file(tmp: Path) -> Result:
    (tmp / "model").mkdir()
    (tmp / "model.txt").write_text("x\n")
    out = tmp / "model.txt" / "exported"
    return _run(
        tmp, ["export", str(tmp / "model"), "--to", "cross-encoder", "--out", str(out), "--overwrite"]
    )


def eval_out_not_an_eval_folder(tmp: Path) -> Result:
    _user_files(tmp / "results")
    suite = MALFORMED / "eval_missing_system" / "suite.yaml"
    return _run(tmp, ["eval", str(suite), "--systems", "lex", "--out", str(tmp / "results"), "--no-progress"])


def eval_out_is_file(tmp: Path) -> Result:
    (tmp / "results").write_text("x\n")
    suite = MALFORMED / "eval_missing_system" / "suite.yaml"
    return _run(tmp, ["eval", str(suite), "--systems", "lex", "--out", str(tmp / "results"), "--no-progress"])


def mine_out_exists(tmp: Path) -> Result:
    col = _beir(tmp / "col")
    (tmp / "groups.jsonl").write_text('{"earlier": "groups"}\n')
    return _run(
        tmp,
        [
            "mine",
            str(col),
            "--split",
            "test",
            "--run",
            str(col / "run.trec"),
            "--out",
            str(tmp / "groups.jsonl"),
        ],
    )


def mine_out_is_the_run(tmp: Path) -> Result:
    col = _beir(tmp / "col")
    run = str(col / "run.trec")
    return _run(tmp, ["mine", str(col), "--split", "test", "--run", run, "--out", run, "--overwrite"])


def label_out_is_the_input(tmp: Path) -> Result:
    groups = tmp / "groups.jsonl"
    groups.write_text(json.dumps({"query": "q", "positives": ["a"], "negatives": ["b"]}) + "\n")
    return _run(
        tmp, ["label", "--groups", str(groups), "--teacher", "run:x.run", "--out", str(groups), "--overwrite"]
    )


def mrb_convert_dst_not_empty(tmp: Path) -> Result:
    (tmp / "published").mkdir()
    _user_files(tmp / "task")
    return _run(tmp, ["mrb-convert", str(tmp / "published"), str(tmp / "task"), "--run", str(tmp / "x.run")])


def _recipe(tmp: Path, output_dir: Path) -> Path:
    model = tmp / "base_model"
    model.mkdir(exist_ok=True)
    (model / "config.json").write_text('{"model_type": "qwen3"}\n')
    (tmp / "groups.jsonl").write_text(
        json.dumps({"query": "q", "positives": ["a"], "negatives": ["b"]}) + "\n"
    )
    recipe = tmp / "recipe.yaml"
    recipe.write_text(
        f"model: {{name_or_path: {model}, architecture: causal}}\n"
        f"data: {{train_file: {tmp / 'groups.jsonl'}}}\n"
        f"training: {{output_dir: {output_dir}}}\n"
    )
    return recipe


def train_into_the_base_model(tmp: Path) -> Result:
    return _run(tmp, ["train", str(_recipe(tmp, tmp / "base_model")), "--overwrite"])


def train_output_dir_not_empty(tmp: Path) -> Result:
    _user_files(tmp / "out")
    return _run(tmp, ["train", str(_recipe(tmp, tmp / "out"))])


def train_output_dir_read_only(tmp: Path) -> Result:
    """A read-only output folder (simulated: the write probe fails with EROFS; this suite may run as root, whom
    permission bits do not stop) fails before the tokenizer loads, not at the first save."""
    (tmp / "out").mkdir()
    real = tempfile.mkstemp

    def read_only(*a, **k):
        if str(k.get("dir", "")).startswith(str(tmp / "out")):
            raise OSError(errno.EROFS, "Read-only file system")
        return real(*a, **k)

    tempfile.mkstemp = read_only
    try:
        return _run(tmp, ["train", str(_recipe(tmp, tmp / "out"))])
    finally:
        tempfile.mkstemp = real


def recipes_check_of_a_missing_folder(tmp: Path) -> Result:
    return _run(tmp, ["recipes", str(tmp / "no_recipes_here"), "--check"])


def recipes_check_of_a_folder_without_recipes(tmp: Path) -> Result:
    (tmp / "empty").mkdir()
    return _run(tmp, ["recipes", str(tmp / "empty"), "--check"])


# scenario → fragments of the one-line message (exit status 2 and everything kept, for all)
SCENARIOS: dict[str, tuple[Callable[[Path], Result], list[str]]] = {
    "merge outputs/run --out outputs --overwrite": (
        merge_out_contains_source,
        ["contains the input", "outside"],
    ),
    "merge --out <folder with the user's files>": (merge_out_not_empty, ["not empty", "--overwrite"]),
    "export --out <a file>": (export_out_is_file, ["model.txt", "is a file, not a folder"]),
    "export --out <a file>/sub --overwrite": (
        export_out_under_a_file,
        ["model.txt is a file", "model.txt/exported cannot be created"],
    ),
    "eval --out <folder with the user's files>": (eval_out_not_an_eval_folder, ["not empty", "--overwrite"]),
    "eval --out <a file>": (eval_out_is_file, ["results", "is a file, not a folder"]),
    "mine --out <existing file>": (mine_out_exists, ["groups.jsonl", "already exists", "--overwrite"]),
    "mine --out <the run> --overwrite": (mine_out_is_the_run, ["run.trec is also an input"]),
    "label --out <the --groups file> --overwrite": (
        label_out_is_the_input,
        ["groups.jsonl is also an input"],
    ),
    "mrb-convert SRC <folder with the user's files>": (mrb_convert_dst_not_empty, ["DST", "not empty"]),
    "train, output_dir = the base model, --overwrite": (
        train_into_the_base_model,
        ["training.output_dir", "input"],
    ),
    "train, output_dir with the user's files": (
        train_output_dir_not_empty,
        ["training.output_dir", "not empty"],
    ),
    "train, read-only output_dir": (
        train_output_dir_read_only,
        ["training.output_dir", "read-only file system"],
    ),
    "recipes <missing folder> --check": (recipes_check_of_a_missing_folder, ["recipe folder not found"]),
    "recipes <folder without recipes> --check": (
        recipes_check_of_a_folder_without_recipes,
        ["no *.yaml recipes"],
    ),
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_refused_before_any_work_and_nothing_touched(name, tmp_path):
    fn, fragments = SCENARIOS[name]
    res = fn(tmp_path)
    assert res.rc == 2, res
    for frag in fragments:
        assert frag in res.message, (frag, res.message)
    assert res.kept, res.note


def test_recipes_check_outside_the_repository_finds_the_recipes(tmp_path, capsys):
    from rerank_align.cli import main

    old = Path.cwd()
    os.chdir(tmp_path)
    try:
        rc = main(["recipes"])
    finally:
        os.chdir(old)
    out = capsys.readouterr().out.splitlines()
    assert rc == 0 and len(out) > 10 and all(line.endswith(".yaml") for line in out)


def test_overwrite_replaces_only_the_target(tmp_path):
    """--overwrite swaps the new folder in only when it is complete, and touches nothing beside the target."""
    from rerank_align import io as rio

    (tmp_path / "sibling.txt").write_text("beside the target\n")
    _user_files(tmp_path / "out")
    rio.check_output(tmp_path / "out", overwrite=True)
    with rio.atomic_dir(tmp_path / "out") as tmp:
        (tmp / "new.bin").write_bytes(b"new")
        assert (
            tmp_path / "out" / "notes.txt"
        ).exists()  # the old content stays until the new one is complete
    assert sorted(os.listdir(tmp_path)) == ["out", "sibling.txt"]
    assert os.listdir(tmp_path / "out") == ["new.bin"]


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_outputs_honour_the_umask(tmp_path, umask):
    from rerank_align import io as rio

    old = os.umask(umask)
    try:
        rio.write_json(tmp_path / "a.json", {"x": 1})
        with rio.atomic_dir(tmp_path / "model") as d:
            (d / "w.bin").write_bytes(b"w")
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o666 & ~umask
    assert (tmp_path / "model").stat().st_mode & 0o777 == 0o777 & ~umask
    # a file that replaces another keeps that file's mode (a deliberately private file stays private)
    os.chmod(tmp_path / "a.json", 0o640)
    rio.write_json(tmp_path / "a.json", {"x": 2})
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o640


def test_stale_partial_folders_of_killed_processes_are_removed(tmp_path):
    from rerank_align import io as rio

    dead = tmp_path / ".model.999999999.abc.partial"  # no such pid
    alive = tmp_path / f".model.{os.getpid()}.abc.partial"
    other = tmp_path / ".model.notes"
    for d in (dead, alive, other):
        d.mkdir()
    with rio.atomic_dir(tmp_path / "model") as d:
        (d / "w").write_text("w")
    assert not dead.exists() and alive.exists() and other.exists()


def test_a_swap_killed_between_its_two_renames_is_rolled_back(tmp_path):
    """Killed after "model → .old" and before ".partial → model": the next write restores the old folder."""
    from rerank_align import io as rio

    old = tmp_path / ".model.999999999.abc.old"
    old.mkdir()
    (old / "w.bin").write_bytes(b"previous")
    (tmp_path / ".model.999999999.def.partial").mkdir()
    rio.clean_stale_partials(tmp_path / "model")
    assert (tmp_path / "model" / "w.bin").read_bytes() == b"previous"
    assert sorted(os.listdir(tmp_path)) == ["model"]
