"""python -m bench [--smoke] [--out FILE] [--server BINARY] [--table N ...]"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import __doc__ as about
from .processes import ROOT
from .report import TABLES, check, report, update


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=(about or "").splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs/benchmarks.md")
    parser.add_argument("--server", type=Path, default=ROOT / "bin/server", help="the server binary")
    parser.add_argument("--smoke", action="store_true", help="tiny counts: prove the harness works")
    parser.add_argument(
        "--table",
        type=int,
        action="append",
        choices=range(1, len(TABLES) + 1),
        metavar="N",
        help=f"run only table N (1-{len(TABLES)}; repeatable) and update its section of --out",
    )
    args = parser.parse_args(argv)
    if args.table:
        try:
            current = args.out.read_text()
            check(current)
        except (OSError, ValueError) as exc:
            parser.error(f"--table updates an earlier report: {args.out}: {exc}")
        text = update(current, args.server, args.smoke, sorted(set(args.table)))
    else:
        text = report(args.server, args.smoke)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
