#!/usr/bin/env python3
"""Per-call overhead from Python: a 1-element add, a 64x64 matmul, a view, and .backward() of a
tiny graph, for nabla, PyTorch and numpy (where it has the op), on the CPU, in one run.

Each library is timed in a process of its own, so that one's threads and caches do not weigh on
the other's; the processes run one after the other and each reports the median of several timeit
repeats, in microseconds per call.

    benchmarks/python_overhead.py [--json FILE]
"""
import argparse
import json
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]

CASES = {
    "nabla": dict(
        setup="import nabla as m; a = m.ones(1); b = m.ones(1); x = m.ones(64, 64); "
              "w = m.ones(4, requires_grad=True)",
        add="a + b", matmul="x @ x", view="x.view(4096)",
        backward="(w * w).sum().backward()"),
    "torch": dict(
        setup="import torch as m; torch = m; torch.set_num_threads(1); a = m.ones(1); b = m.ones(1); "
              "x = m.ones(64, 64); w = m.ones(4, requires_grad=True)",
        add="a + b", matmul="x @ x", view="x.view(4096)",
        backward="(w * w).sum().backward()"),
    "numpy": dict(
        setup="import numpy as m; a = m.ones(1, m.float32); b = m.ones(1, m.float32); "
              "x = m.ones((64, 64), m.float32)",
        add="a + b", matmul="x @ x", view="x.reshape(4096)"),
}

CHILD = """
import json, statistics, sys, timeit
case = json.loads(sys.argv[1])
setup = case.pop("setup")
out = {}
for name, stmt in case.items():
    t = timeit.Timer(stmt, setup)
    n, _ = t.autorange()
    runs = t.repeat(7, max(n, 1000))
    out[name] = statistics.median(runs) / max(n, 1000) * 1e6
print(json.dumps(out))
"""


def measure(library):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if library == "nabla":
        env["PYTHONPATH"] = os.environ.get("NABLA_PYTHON_DIR", str(ROOT / "build" / "python"))
    r = subprocess.run([sys.executable, "-c", CHILD, json.dumps(CASES[library])], capture_output=True,
                       text=True, env=env)
    if r.returncode:
        print(f"python_overhead: {library} failed: {r.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    return json.loads(r.stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", help="append the results as JSON lines to this file")
    args = parser.parse_args()
    results = {lib: measure(lib) for lib in CASES}
    print(f"{'call':10s} " + " ".join(f"{lib:>10s}" for lib in CASES) + "   nabla/torch")
    for op in ("add", "matmul", "view", "backward"):
        cells = [results[lib].get(op) if results[lib] else None for lib in CASES]
        ratio = (cells[0] / cells[1]) if cells[0] and cells[1] else None
        print(f"{op:10s} " + " ".join(f"{c:10.3f}" if c else f"{'-':>10s}" for c in cells)
              + (f"   {ratio:.2f}" if ratio else ""))
    if args.json:
        with open(args.json, "a") as f:
            for lib, r in results.items():
                for op, us in (r or {}).items():
                    f.write(json.dumps({"bench": "python_overhead", "library": lib, "call": op,
                                        "us_per_call": round(us, 4)}) + "\n")


if __name__ == "__main__":
    main()
