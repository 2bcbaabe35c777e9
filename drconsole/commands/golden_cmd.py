"""``drconsole golden capture``: record what the healthy system answers now."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from drconsole.commands.output import print_json, stdout
from drconsole.commands.target_args import add_target_arguments, target_from_args
from drconsole.engines import open_engine
from drconsole.errors import UsageError
from drconsole.golden import capture, save_golden


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    golden = subparsers.add_parser("golden", help="golden query sets")
    commands = golden.add_subparsers(dest="golden_command", required=True)
    grab = commands.add_parser("capture", help="record the answers of the healthy system")
    add_target_arguments(grab)
    grab.add_argument("--collection", required=True)
    grab.add_argument("--queries", type=int, default=100, help="query vectors (default 100)")
    grab.add_argument("--k", type=int, default=10, help="neighbours per query (default 10)")
    grab.add_argument(
        "--filter-field", help="also ask a few queries per value of this field (e.g. tenant_id)"
    )
    grab.add_argument(
        "--query-vectors",
        type=Path,
        metavar="FILE.npy",
        help="your own query vectors (float32 [n, dimension]) instead of perturbed records",
    )
    grab.add_argument("--seed", type=int, default=0)
    grab.add_argument("--out", type=Path, required=True, metavar="FILE")
    grab.add_argument("--json", action="store_true")
    grab.set_defaults(handler=capture_command)


def capture_command(args: argparse.Namespace) -> int:
    if args.queries < 1 or args.k < 1:
        raise UsageError("--queries and --k must be at least 1")
    vectors = None
    if args.query_vectors:
        try:
            vectors = np.load(args.query_vectors, allow_pickle=False).astype(np.float32)
        except (OSError, ValueError) as error:
            raise UsageError(f"{args.query_vectors}: not a .npy array ({error})") from None
        if vectors.ndim != 2:
            raise UsageError(f"{args.query_vectors}: expected a [queries, dimension] array")
    engine = open_engine(target_from_args(args))
    try:
        golden = capture(
            engine,
            args.collection,
            queries=args.queries,
            k=args.k,
            filter_field=args.filter_field,
            query_vectors=vectors,
            seed=args.seed,
        )
    finally:
        engine.close()
    files = save_golden(golden, args.out)
    filtered = sum(1 for query in golden.queries if query.filter)
    summary = {
        "file": str(args.out),
        "files": [str(f) for f in files],
        "queries": len(golden.queries),
        "filtered": filtered,
        "collection": args.collection,
        "k": args.k,
    }
    if args.json:
        print_json(summary)
    else:
        stdout.print(
            f"{len(golden.queries)} golden queries ({filtered} filtered) of {args.collection} "
            f"written to {', '.join(str(f) for f in files)}"
        )
    return 0
