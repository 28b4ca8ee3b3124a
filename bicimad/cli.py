"""The ``bicimad`` command line.

Each subcommand lives in a module of :mod:`bicimad.jobs` that exposes
``register(subparsers)``; heavy imports happen inside the command, so ``--help`` is fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from bicimad.errors import CommandError

#: Job modules, in the order their commands appear in ``bicimad --help``.
JOB_MODULES = (
    "ingest",      # ingest, data summary
    "demand",      # demand train|backtest|forecast
    "simulate",    # sim fidelity|run
    "rl",          # rl train|eval
    "agent",       # train-agent
    "compare",     # compare
    "nightly",     # nightly
    "whatif",      # whatif
    "report",      # report
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bicimad",
        description="BiciMAD rebalancing decision system: ingest EMT open data, forecast demand, "
        "simulate the truck fleet, plan and compare.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    parser.add_argument("--data-dir", help="data root (default: $BICIMAD_DATA_DIR or ./data)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in JOB_MODULES:
        importlib.import_module(f"bicimad.jobs.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except CommandError as exc:
        print(f"bicimad {args.command}: error: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
