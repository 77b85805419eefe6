"""Run the benchmarks: ``nox -s bench [-- NAME ...]`` or ``python -m bench [NAME ...]``.

Each ``bench/bench_NAME.py`` module has a ``main() -> None`` that measures anysgi and its
peers in the same run and prints the figures and ratios. With no NAME every one runs.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from pathlib import Path


def available() -> list[str]:
    here = Path(__file__).parent
    return sorted(
        m.name.removeprefix("bench_")
        for m in pkgutil.iter_modules([str(here)])
        if m.name.startswith("bench_")
    )


def main(argv: list[str] | None = None) -> int:
    names = available()
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "names",
        nargs="*",
        choices=[*names, []],
        metavar="NAME",
        help=f"benchmarks to run (default: all): {', '.join(names)}",
    )
    args = parser.parse_args(argv)
    for name in args.names or names:
        print(f"\n=== {name} ===", flush=True)
        module = importlib.import_module(f"bench.bench_{name}")
        module.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
