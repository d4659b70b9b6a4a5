"""``rerank-align data``: convert training data between the field's formats and this project's JSONL.

rerank-align data convert --from tevatron --to jsonl Tevatron/msmarco-passage data/msmarco-passage/train_groups.jsonl
rerank-align data convert --to flagembedding groups.jsonl groups.flag.jsonl
rerank-align data formats          # the readers, their rows and record kinds
"""

from __future__ import annotations

import argparse

from rerank_align.data.formats import FORMAT_KIND, FORMATS, WRITE_FORMATS, convert
from rerank_align.io import check_output


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rerank-align data", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="action", metavar="<action>")
    c = sub.add_parser("convert", help="read IN in any supported format, write OUT (JSONL) in --to")
    c.add_argument("--from", dest="src", choices=FORMATS, default="auto", help="format of IN (default: auto)")
    c.add_argument("--to", dest="dst", choices=WRITE_FORMATS, default="jsonl", help="format of OUT")
    c.add_argument(
        "--kind", choices=["group", "list", "preference"], help="record kind of project JSONL input"
    )
    c.add_argument("--split", default="train", help="split of a hub id / saved DatasetDict (default: train)")
    c.add_argument("--config", help="config (subset) name of a hub dataset, e.g. triplet-hard")
    c.add_argument("input", metavar="IN", help="file, save_to_disk folder or hub dataset id")
    c.add_argument("output", metavar="OUT", help="output JSONL (written atomically)")
    c.add_argument("--overwrite", action="store_true", help="replace an existing OUT file")
    sub.add_parser("formats", help="list the readers and the record kind each yields")
    return p


def main(argv: list[str]) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    if args.action == "formats":
        for f in FORMATS[1:]:
            print(f"{f:22s} {FORMAT_KIND.get(f, 'group | list | preference')}")
        return 0
    if args.action != "convert":
        p.print_help()
        return 0

    check_output(args.output, overwrite=args.overwrite, kind="file", sources=[args.input], where="OUT")
    n, fmt, kind = convert(
        args.input,
        args.output,
        src_format=args.src,
        dst_format=args.dst,
        kind=args.kind,
        split=args.split,
        config=args.config,
    )
    print(f"wrote {n} {kind} records ({fmt} → {args.dst}) to {args.output}")
    return 0
