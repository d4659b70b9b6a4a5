"""Results JSON, markdown report, rich table and PNG plots of an evaluation."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

from rerank_align.data.beir import write_run
from rerank_align.io import atomic_write, write_json
from rerank_align.provenance import git_info, library_versions


def build_results(
    suite: Any,
    *,
    systems: dict,
    collections: dict,
    baseline: str,
    metrics: list[str],
    timing: dict,
    wall_seconds: float,
    world_size: int,
    argv: list[str] | None,
) -> dict:
    return {
        "format": "rerank_align.eval/1",
        "suite": suite.to_dict(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": ["rerank-align", "eval", *argv] if argv is not None else None,
        "git": git_info(),
        "versions": library_versions(),
        "baseline": baseline,
        "metrics": metrics,
        "primary_metric": suite.primary if suite.primary in metrics else metrics[0],
        "systems": systems,
        "collections": collections,
        "timing": {"wall_seconds": round(wall_seconds, 3), "processes": world_size, "per_system": timing},
    }


def _fmt(v: float) -> str:
    return f"{v:.4f}"


def _mark(results: dict, col: str, system: str, metric: str) -> str:
    """``†`` where the Holm-corrected randomisation test rejects at alpha, ``‡`` where the t-test does too."""
    sig = results["collections"][col]["significance"].get(system, {}).get(metric)
    if not sig:
        return ""
    alpha = results["suite"]["significance"]["alpha"]
    perm, tt = sig["p_perm_holm"] < alpha, sig["p_t_holm"] < alpha
    return ("†" if perm else "") + ("‡" if tt else "")


def markdown(results: dict, plots: list[str] | None = None) -> str:
    metrics, base = results["metrics"], results["baseline"]
    primary = results["primary_metric"]
    alpha = results["suite"]["significance"]["alpha"]
    lines = [
        f"# Evaluation: {results['suite']['name']}",
        "",
        f"- created: {results['created']}; git commit: `{results['git'].get('commit')}`"
        + (" (dirty)" if results["git"].get("dirty") else ""),
        f"- command: `{' '.join(results['command'] or [])}`",
        f"- baseline: **{base}**; † significant by the paired randomisation test, ‡ by the paired t-test (per query, "
        f"α={alpha}, Holm-corrected across systems); the sign of Δ below gives the direction",
        "- unjudged documents count as non-relevant; `judged@10` is the fraction of the top 10 that is judged",
        "",
        "## Systems",
        "",
        "| system | type | path | fingerprint | reranker.json sha256 |",
        "|---|---|---|---|---|",
    ]
    for name, info in results["systems"].items():
        fp = (info.get("fingerprint") or "")[:16]
        rj = (info.get("reranker_json_sha256") or "")[:16]
        lines.append(f"| {name} | {info.get('type')} | {info.get('path') or ''} | {fp} | {rj} |")
    for col, c in results["collections"].items():
        lines += [
            "",
            f"## {col}",
            "",
            f"{c['n_queries']} queries evaluated of {c.get('n_queries_judged', c['n_queries'])} judged "
            f"({c['n_queries_with_candidates']} with candidates), rerank depth "
            f"{c['depth']}, binary relevance at grade ≥ {c['rel']}, run `{c['run']}`, "
            f"{c['dropped_self_hits']} self hits dropped (policy `{c['drop_self_hits']}`), "
            f"{c.get('dropped_unjudged_candidates', 0)} run rows of unjudged queries left out"
            + (
                f", byte-order mark stripped from {len(c['boms_stripped'])} file(s)"
                if c.get("boms_stripped")
                else ""
            )
            + ".",
            "",
            "| system | " + " | ".join(metrics) + f" | judged@10 | W/T/L ({primary}) |",
            "|---|" + "---|" * (len(metrics) + 2),
        ]
        for s, m in c["metrics"].items():
            cells = [_fmt(m[k]) + _mark(results, col, s, k) for k in metrics]
            sig = c["significance"].get(s, {}).get(primary)
            wtl = f"{sig['wins']}/{sig['ties']}/{sig['losses']}" if sig else "—"
            lines.append(f"| {s} | " + " | ".join(cells) + f" | {m['judged@10']:.3f} | {wtl} |")
        if c["significance"]:
            lines += ["", f"p-values vs {base} ({primary}): "]
            for s, sm in c["significance"].items():
                x = sm[primary]
                lines.append(
                    f"- {s}: Δ={x['delta']:+.4f}, t={x['t']:.3f}, p_t={x['p_t']:.4g} (Holm {x['p_t_holm']:.4g}), "
                    f"p_rand={x['p_perm']:.4g} (Holm {x['p_perm_holm']:.4g})"
                )
    if "mrb" in results:
        lines += ["", "## MRB aggregate", "", _mrb_table(results)]
    if plots:
        lines += ["", "## Plots", ""]
        lines += [f"![{Path(p).stem}]({p})" for p in plots]
    t = results["timing"]
    repairs = [
        f"- {s} · {c}: {v['repaired']} of {v['outputs']} outputs repaired"
        for s, per in t["per_system"].items()
        for c, v in per.items()
        if "outputs" in v
    ]
    if repairs:
        lines += ["", "## Listwise outputs that needed repair", "", *repairs]
    lines += ["", f"Wall time {t['wall_seconds']:.1f} s on {t['processes']} process(es).", ""]
    return "\n".join(lines)


def _mrb_table(results: dict) -> str:
    agg = results["mrb"]
    types = [t for t in agg["type_order"] if any(t in v["per_type"] for v in agg["systems"].values())]
    out = [
        "| system | " + " | ".join(types) + " | overall (tasks) | overall (types) |",
        "|---|" + "---|" * (len(types) + 2),
    ]
    for s, v in agg["systems"].items():
        cells = [_fmt(v["per_type"][t]) if t in v["per_type"] else "—" for t in types]
        out.append(
            f"| {s} | " + " | ".join(cells) + f" | {_fmt(v['overall'])} | {_fmt(v['overall_types'])} |"
        )
    return "\n".join(out)


def rich_table(results: dict) -> Any:
    from rich.table import Table

    metrics = results["metrics"]
    table = Table(title=f"{results['suite']['name']} (baseline {results['baseline']})")
    table.add_column("collection")
    table.add_column("system")
    for m in metrics:
        table.add_column(m, justify="right")
    table.add_column("judged@10", justify="right")
    for col, c in results["collections"].items():
        for i, (s, m) in enumerate(c["metrics"].items()):
            table.add_row(
                col if i == 0 else "",
                s,
                *[_fmt(m[k]) + _mark(results, col, s, k) for k in metrics],
                f"{m['judged@10']:.3f}",
            )
        table.add_section()
    return table


def plot(results: dict, out_dir: Path) -> list[str]:
    """Two PNGs: the primary metric per collection with 95% bootstrap CIs; per-query deltas vs the baseline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    primary, base = results["primary_metric"], results["baseline"]
    cols = list(results["collections"])
    systems = list(results["systems"])
    files = []
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(cols) * max(1, len(systems)) / 2 + 2), 4.5))
    width = 0.8 / max(1, len(systems))
    x = np.arange(len(cols))
    for i, s in enumerate(systems):
        vals = [results["collections"][c]["metrics"][s][primary] for c in cols]
        lo = [results["collections"][c]["ci95"][s][primary][0] for c in cols]
        hi = [results["collections"][c]["ci95"][s][primary][1] for c in cols]
        err = np.array([np.subtract(vals, lo), np.subtract(hi, vals)])
        ax.bar(x + (i - (len(systems) - 1) / 2) * width, vals, width, yerr=err, capsize=3, label=s)
    ax.set_xticks(x, cols, rotation=20, ha="right")
    ax.set_ylabel(f"{primary} (mean, 95% bootstrap CI)")
    ax.set_title(f"{results['suite']['name']}: {primary} per collection")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out_dir / "plots" / f"{_safe(primary)}_per_collection.png"
    _save(fig, path)
    plt.close(fig)
    files.append(str(path.relative_to(out_dir)))

    others = [s for s in systems if s != base]
    if others:
        n = len(cols)
        ncol = min(4, n)
        nrow = (n + ncol - 1) // ncol
        fig, axes = plt.subplots(nrow, ncol, figsize=(4 * ncol, 3 * nrow), squeeze=False)
        for k, c in enumerate(cols):
            ax = axes[k // ncol][k % ncol]
            pq = results["collections"][c]["per_query"]
            qids = sorted(pq[base][primary])
            for s in others:
                d = np.sort([pq[s][primary][q] - pq[base][primary][q] for q in qids])[::-1]
                ax.bar(np.arange(len(d)), d, width=1.0, alpha=0.6, label=s)
            ax.axhline(0, color="black", lw=0.6)
            ax.set_title(c, fontsize=9)
            ax.set_xlabel("queries (sorted)", fontsize=8)
            ax.set_ylabel(f"Δ {primary} vs {base}", fontsize=8)
        for k in range(n, nrow * ncol):
            axes[k // ncol][k % ncol].axis("off")
        axes[0][0].legend(fontsize=7)
        fig.tight_layout()
        path = out_dir / "plots" / f"{_safe(primary)}_delta_per_query.png"
        _save(fig, path)
        plt.close(fig)
        files.append(str(path.relative_to(out_dir)))
    return files


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name)


def run_path(out_dir: str | Path, collection: str, system: str) -> Path:
    """Where an evaluation writes ``system``'s reranked run of ``collection`` (names made file-safe)."""
    return Path(out_dir) / "runs" / collection / f"{_safe(system)}.run"


def _save(fig: Any, path: Path) -> None:
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=110)


def write_outputs(results: dict, out_dir: Path, *, rankings: dict | None = None) -> None:
    """``results.json``, ``report.md``, ``plots/*.png`` and ``runs/<collection>/<system>.run`` (all atomic)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if rankings:
        for col, by_sys in rankings.items():
            for s, ranking in by_sys.items():
                run = {
                    q: [(d, float(len(docs) - i)) for i, d in enumerate(docs)]
                    for q, docs in ranking.items()
                    if docs
                }
                write_run(run, run_path(out_dir, col, s), tag=_safe(s))
    plots = plot(results, out_dir)
    results["plots"] = plots
    write_json(out_dir / "results.json", results)
    with atomic_write(out_dir / "report.md") as fh:
        fh.write(markdown(results, plots))
