"""``bicimad report RUN [RUN ...]``: an HTML comparison of run folders."""

from __future__ import annotations

from pathlib import Path


def register(sub) -> None:
    parser = sub.add_parser(
        "report", help="HTML comparison of runs (occupancy table, hourly profile, map, worst stations)",
        description="Write a self-contained HTML report comparing run folders (as written by "
        "`bicimad nightly` or `bicimad compare`): the occupancy table, the hourly profile of the "
        "problem share, a map of stations coloured by problem hours, and the worst stations.",
    )
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run folder(s)")
    parser.add_argument("--out", "-o", default=None,
                        help="HTML file to write (default: report.html in the first run folder for one run, "
                        "else comparison.html in the current folder)")
    parser.add_argument("--title", default="BiciMAD occupancy comparison", help="the report's title")
    parser.add_argument("--worst", type=int, default=10, help="how many worst stations to list (default 10)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from bicimad.errors import CommandError
    from bicimad.report.html import RunFolderError, build_report, load_run

    try:
        runs = [load_run(path) for path in args.runs]
    except (RunFolderError, OSError, ValueError) as exc:
        raise CommandError(str(exc), 66) from None
    labels = [r.label for r in runs]
    if len(set(labels)) < len(labels):  # two folders with the same name: label by full path
        for r in runs:
            r.label = str(r.path)
    if args.out:
        out = Path(args.out)
    else:
        out = runs[0].path / "report.html" if len(runs) == 1 else Path("comparison.html")
    build_report(runs, out, title=args.title, worst_n=args.worst)
    print(f"report: {out.resolve()}")
    return 0
