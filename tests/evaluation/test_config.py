"""Strict suite parsing: unknown keys and bad values fail with the key path and a suggestion."""

from __future__ import annotations

import pytest

from rerank_align.evaluation.config import SuiteError, apply_overrides, parse_suite


def raw(**extra):
    d = {
        "collections": [{"name": "c", "path": "/tmp/c", "rel": 2}],
        "systems": [
            {"name": "bm25", "type": "first_stage"},
            {"name": "ce", "type": "cross_encoder", "path": "/m"},
        ],
    }
    d.update(extra)
    return d


def test_defaults():
    s = parse_suite(raw())
    assert s.metrics == ["nDCG@10", "RR@10", "R@10", "R@100", "AP"]
    assert s.baseline_name == "bm25" and s.depth == 100 and s.collections[0].rel == 2
    assert s.collections[0].drop_self_hits == "auto" and s.collections[0].first_stage_order == "trec_eval"


@pytest.mark.parametrize(
    "mutate, where, hint",
    [
        (lambda d: d.update(depht=3), "depht", "did you mean 'depth'"),
        (lambda d: d["collections"][0].update(rell=2), "collections.0.rell", "did you mean 'rel'"),
        (
            lambda d: d["systems"][1].update(type="cross-encoder"),
            "systems.1.type",
            "did you mean 'cross_encoder'",
        ),
        (lambda d: d.update(significance={"alpah": 0.1}), "significance.alpah", "did you mean 'alpha'"),
        (lambda d: d.update(baseline="bm52"), "baseline", "did you mean 'bm25'"),
        (lambda d: d.update(metrics=["nDCG@10", "foo@3"]), "metrics.1", None),
        (lambda d: d.update(depth=0), "depth", None),
        (lambda d: d["systems"][1].pop("path"), "systems.1.path", None),
    ],
)
def test_errors_name_the_key(mutate, where, hint):
    d = raw()
    mutate(d)
    with pytest.raises(SuiteError) as e:
        parse_suite(d)
    msg = str(e.value)
    assert msg.startswith(where), msg
    if hint:
        assert hint in msg
    assert "\n" not in msg


def test_overrides():
    d = apply_overrides(
        raw(), ["depth=20", "collections.c.rel=1", "systems.1.batch_size=8", "significance.seed=3"]
    )
    s = parse_suite(d)
    assert (
        s.depth == 20
        and s.collections[0].rel == 1
        and s.systems[1].batch_size == 8
        and s.significance.seed == 3
    )
    with pytest.raises(SuiteError, match="collections.x"):
        apply_overrides(raw(), ["collections.x.rel=1"])
    # one past the end appends (then addressable by index or name); further is an error that says so
    d = apply_overrides(
        raw(), ["systems.2={name: ce2, type: cross_encoder, path: /m2}", "systems.ce2.batch_size=4"]
    )
    assert [(x.name, x.batch_size) for x in parse_suite(d).systems][1:] == [("ce", None), ("ce2", 4)]
    with pytest.raises(SuiteError, match="index 3 out of range") as e:
        apply_overrides(raw(), ["systems.3={name: ce2, type: cross_encoder, path: /m2}"])
    assert "index 2 appends" in str(e.value)
    # a flow mapping the shell split at its spaces: one error naming the key, not an internal error
    with pytest.raises(SuiteError, match="not valid YAML") as e:
        apply_overrides(raw(), ["systems.1={name:", "x}"])
    assert e.value.where == "systems.1" and "quote" in str(e.value)


def test_override_paths_resolve_against_the_working_directory(tmp_path, monkeypatch):
    """Paths in the file are the suite's; paths typed in an override are the user's. `cache=outputs/x.sqlite` from
    the repository root once landed in `eval/suites/outputs/`, so a given cache was silently never read."""
    from rerank_align.evaluation.config import load_suite

    suites, work = tmp_path / "eval" / "suites", tmp_path / "work"
    (suites / "c").mkdir(parents=True)
    (work / "c2").mkdir(parents=True)
    (work / "m").mkdir()
    (work / "c2" / "bm25.run").write_text("")
    (suites / "s.yaml").write_text(
        "collections: [{name: c, path: c}]\n"
        "systems: [{name: bm25, type: first_stage}, {name: r, type: reranker, path: r}]\n"
        "cache: in_file.sqlite\n"
    )
    monkeypatch.chdir(work)
    s = load_suite(suites / "s.yaml")
    assert s.cache == suites / "in_file.sqlite" and s.collections[0].path == suites / "c"  # the file's rules
    s = load_suite(
        suites / "s.yaml",
        [
            "cache=outputs/x.sqlite",
            "output=outputs/ev",
            "collections.c.path=c2",
            "collections.c.run=c2/bm25.run",
            "systems.r.path=m",
            "systems.1={name: hub, type: base, path: org/not-here}",
        ],
    )
    assert s.cache == work / "outputs" / "x.sqlite" and s.output == work / "outputs" / "ev"
    assert s.collections[0].path == work / "c2" and s.collections[0].run == work / "c2" / "bm25.run"
    assert s.systems[1].path == "org/not-here"  # not a folder here: a hub id, left alone
    s = load_suite(suites / "s.yaml", ["systems.r.path=m"])
    assert s.systems[1].path == str(work / "m")


def test_metric_aliases():
    from rerank_align.evaluation.metrics import canonical_name, parse_metric

    assert (
        canonical_name("MRR@10") == "RR@10"
        and canonical_name("Recall@100") == "R@100"
        and canonical_name("MAP") == "AP"
    )
    assert str(parse_metric("MRR@10", rel=2)) == "RR(rel=2)@10"
    assert str(parse_metric("nDCG@10", rel=2)) == "nDCG@10"
