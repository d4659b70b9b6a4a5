"""The CLI answers fast (no heavy imports at start-up) and unbuilt commands answer with one line."""

from __future__ import annotations

import subprocess
import sys


def test_help_does_not_import_heavy_libraries():
    code = (
        "import sys; from rerank_align.cli import build_parser; build_parser().format_help();"
        "heavy=[m for m in ('torch','transformers','trl','peft','datasets','deepspeed') if m in sys.modules];"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_help_lists_every_subcommand():
    out = subprocess.run(
        [sys.executable, "-m", "rerank_align.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for cmd in ("train", "eval", "label", "mine", "merge", "export", "push", "plan", "recipes"):
        assert cmd in out


def test_a_user_error_answers_one_line_without_traceback():
    proc = subprocess.run(
        [sys.executable, "-m", "rerank_align.cli", "plan", "missing.yaml"], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "missing.yaml" in proc.stderr and "Traceback" not in proc.stderr
