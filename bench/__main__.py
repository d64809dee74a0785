"""python -m bench [--smoke] [--out FILE] [--server BINARY]"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import __doc__ as about
from .processes import ROOT
from .report import report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=(about or "").splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs/benchmarks.md")
    parser.add_argument("--server", type=Path, default=ROOT / "bin/server", help="the server binary")
    parser.add_argument("--smoke", action="store_true", help="tiny counts: prove the harness works")
    args = parser.parse_args(argv)
    text = report(args.server, args.smoke)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
