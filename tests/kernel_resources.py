#!/usr/bin/env python3
"""Guards the CUDA kernels' resource usage, read from the machine code.

Runs `cuobjdump --dump-resource-usage` on libnabla.so and compares every
kernel of every architecture with the baseline in tests/kernel_resources.txt
(arch, kernel, registers, stack bytes, static shared bytes): a kernel that
needs more registers, stack or shared memory than its baseline, a kernel the
baseline lacks, or stack in a kernel family that must have none fails the
check (one the baseline already records is listed as known). No GPU is
needed. `--update` rewrites the baseline after an
intended change (say why in the commit).

    kernel_resources.py LIBNABLA [--update]

Exit status 77 (a skip for ctest) when no cuobjdump is found: the toolkit's,
one on PATH, or PyPI's nvidia-cuda-cuobjdump.
"""
import glob
import os
import re
import shutil
import subprocess
import sys

BASELINE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kernel_resources.txt")
# Families whose kernels must never touch local memory (a stack frame means
# spilled registers or an array indexed at run time).
NO_STACK = ("nb_flash", "nb_softmax", "nb_cross_entropy", "nb_row_norm", "nb_bn_")


def find_cuobjdump():
    found = shutil.which("cuobjdump")
    if found:
        return found
    candidates = glob.glob("/usr/local/cuda/bin/cuobjdump")
    try:
        import nvidia  # PyPI's nvidia-cuda-cuobjdump installs nvidia/cu*/bin/cuobjdump
        for root in nvidia.__path__:
            candidates += glob.glob(os.path.join(root, "*", "bin", "cuobjdump"))
    except ImportError:
        pass
    return candidates[0] if candidates else None


def read_usage(tool, library):
    """{(arch, kernel): (registers, stack, shared)} from cuobjdump's report."""
    text = subprocess.run([tool, "--dump-resource-usage", library], check=True,
                          capture_output=True, text=True).stdout
    usage, arch, kernel = {}, None, None
    for line in text.splitlines():
        m = re.match(r"\s*arch = (sm_\d+)", line)
        if m:
            arch = m.group(1)
        m = re.match(r"\s*Function (\S+):", line)
        if m:
            kernel = m.group(1)
            continue
        m = re.search(r"REG:(\d+) STACK:(\d+) SHARED:(\d+)", line)
        if m and kernel:
            usage[(arch, kernel)] = tuple(int(v) for v in m.groups())
            kernel = None
    return usage


def read_baseline():
    baseline = {}
    with open(BASELINE) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            arch, kernel, reg, stack, shared = line.split()
            baseline[(arch, kernel)] = (int(reg), int(stack), int(shared))
    return baseline


def write_baseline(usage):
    with open(BASELINE, "w") as f:
        f.write("# arch kernel registers stack_bytes static_shared_bytes (tests/kernel_resources.py)\n")
        for (arch, kernel), (reg, stack, shared) in sorted(usage.items()):
            f.write(f"{arch} {kernel} {reg} {stack} {shared}\n")


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    tool = find_cuobjdump()
    if not tool:
        print("kernel_resources: skipped: no cuobjdump (pip install nvidia-cuda-cuobjdump)")
        return 77
    usage = read_usage(tool, sys.argv[1])
    if not usage:
        print(f"kernel_resources: no CUDA kernels in {sys.argv[1]}")
        return 1
    if "--update" in sys.argv:
        write_baseline(usage)
        print(f"kernel_resources: baseline of {len(usage)} kernels written to {BASELINE}")
        return 0
    baseline = read_baseline()
    failures, known = [], []
    for key, (reg, stack, shared) in sorted(usage.items()):
        arch, kernel = key
        if stack and any(family in kernel for family in NO_STACK):
            # a stack frame the baseline records is a known defect to fix, not a new one
            (known if baseline.get(key, (0, 0, 0))[1] >= stack else failures).append(
                f"{arch} {kernel}: a {stack}-byte stack frame in a kernel that must have none")
        if key not in baseline:
            failures.append(f"{arch} {kernel}: not in the baseline (run with --update)")
            continue
        b_reg, b_stack, b_shared = baseline[key]
        for name, now, before in (("registers", reg, b_reg), ("stack bytes", stack, b_stack),
                                  ("shared bytes", shared, b_shared)):
            if now > before:
                failures.append(f"{arch} {kernel}: {name} {before} -> {now}")
    with_stack = sum(1 for (_, stack, _) in usage.values() if stack)
    most = max(usage.items(), key=lambda item: item[1][0])
    print(f"kernel_resources: {len(usage)} kernels ({len({a for a, _ in usage})} architectures); "
          f"{with_stack} with a stack frame; most registers {most[1][0]} ({most[0][1][:60]})")
    for line in known:
        print("  known: " + line)
    for failure in failures:
        print("  " + failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
