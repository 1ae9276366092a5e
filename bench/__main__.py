"""Run every benchmark module and print one table: ``python -m bench [name ...]``."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

from bench._common import Result


def _fmt(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def main(argv: list[str]) -> int:
    here = Path(__file__).parent
    names = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))
    if argv:
        names = [n for n in names if any(a in n for a in argv)]
    failed = 0
    print(f"{'benchmark':<66} {'value':>14} {'unit':<10} {'target':>12}  ok")
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        results: list[Result] = module.run()
        for r in results:
            target = (
                "" if r.target is None else ("≥ " if r.higher_is_better else "≤ ") + _fmt(r.target)
            )
            mark = {None: "", True: "yes", False: "NO"}[r.ok]
            failed += r.ok is False
            print(f"{r.name:<66} {_fmt(r.value):>14} {r.unit:<10} {target:>12}  {mark}")
            if r.note:
                print(f"    {r.note}")
    if failed:
        print(f"\n{failed} figure(s) missed their target")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
