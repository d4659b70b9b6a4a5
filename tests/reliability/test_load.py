"""Under load (slow): 1000 queries x 100 candidates with the tiny reranker, bounded memory, and a score cache that
survives SIGKILL. Run with `pytest -m slow tests/reliability/test_load.py -s`; figures come from scripts/load_test.py."""

from __future__ import annotations

import pytest

from tests.conftest import load_script


@pytest.mark.slow
def test_1000_queries_x_100_candidates(tmp_path):
    mod = load_script("load_test")
    s = mod.main(["--work", str(tmp_path)])
    assert s["pairs"] == 100_000
    assert (
        s["run_a_peak_rss_mb"] < 2048
    )  # bounded: the tiny model, the run and the scores, not the pairs' tensors
    assert s["killed_cache_rows"] > 0 and s["rerun_cached"] >= s["killed_cache_rows"]
    assert s["rerun_cached"] + s["rerun_scored"] == s["pairs"]
    assert s["identical_metrics"] and s["max_per_query_diff"] == 0.0
