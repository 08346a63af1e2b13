"""Save and load speed of a checkpoint-sized set of tensors: nabla's safetensors files (through
tests/python/nabla_ctypes.py) against the `safetensors` package with numpy, on the same tensors and
files, interleaved, median of --repeat runs, each after os.sync() so that no run pays for another's
writeback. Saves are compared at equal durability: nabla's default (fsync of the file and its folder)
against the package's save_file followed by the same fsyncs, and nabla's .no_fsync against the
package's plain save_file. Loads read every tensor into a new CPU array. JSON lines.

    .venv/bin/python benchmarks/bench_io.py [--mb 500] [--tensors 100] [--repeat 5] [--dir DIR]
"""
import argparse
import json
import os
import pathlib
import statistics
import sys
import tempfile
import time

import numpy as np
import safetensors.numpy

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests" / "python"))
import nabla_ctypes as nb  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mb", type=float, default=500)
    p.add_argument("--tensors", type=int, default=100)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--dir", default=None)
    a = p.parse_args()
    n = int(a.mb * 1e6 / 4 / a.tensors)
    arrays = {f"layer{i}.weight": np.random.default_rng(i).standard_normal(n, np.float32) for i in range(a.tensors)}
    nbytes = sum(x.nbytes for x in arrays.values())
    made = {name: nb.tensor(x.tobytes(), x.shape, nb.F32) for name, x in arrays.items()}
    named = (nb.Named * len(made))(*[nb.Named(k.encode(), v) for k, v in made.items()])
    folder = pathlib.Path(a.dir or tempfile.mkdtemp())
    ours, theirs = folder / "nabla.safetensors", folder / "package.safetensors"
    ops = ("nabla_save", "package_save_fsync", "nabla_save_no_fsync", "package_save", "nabla_load", "package_load")
    times = {k: [] for k in ops}
    no_fsync = nb.ctypes.pointer(nb.SaveOptions(None, True))

    def timed(key, fn):
        os.sync()
        start = time.perf_counter()
        fn()
        times[key].append(time.perf_counter() - start)

    def flush(path):
        for where, flags in ((path, os.O_RDONLY), (path.parent, os.O_RDONLY | os.O_DIRECTORY)):
            fd = os.open(where, flags)
            os.fsync(fd)
            os.close(fd)

    def package_save_fsync():
        safetensors.numpy.save_file(arrays, str(theirs))
        flush(theirs)

    def nabla_load():
        f = nb.P()
        nb.check(nb._open(str(ours).encode(), nb.ctypes.byref(f)))
        for name in arrays:
            t = nb.P()
            nb.check(nb._get(f, name.encode(), nb.cpu(), nb.ctypes.byref(t)))
            nb._release(t)
        nb._close(f)

    for _ in range(a.repeat):
        timed("nabla_save", lambda: nb.check(nb._save(str(ours).encode(), named, len(made), None)))
        timed("package_save_fsync", package_save_fsync)
        timed("nabla_save_no_fsync", lambda: nb.check(nb._save(str(ours).encode(), named, len(made), no_fsync)))
        timed("package_save", lambda: safetensors.numpy.save_file(arrays, str(theirs)))
        timed("nabla_load", nabla_load)
        timed("package_load", lambda: safetensors.numpy.load_file(str(theirs)))
    for t in made.values():
        nb._release(t)
    median = {k: statistics.median(v) for k, v in times.items()}
    for key, seconds in median.items():
        print(json.dumps({"bench": "safetensors_io", "op": key, "bytes": nbytes, "tensors": a.tensors,
                          "s": round(seconds, 4), "GB/s": round(nbytes / seconds / 1e9, 3)}))
    print(json.dumps({"bench": "safetensors_io", "ratios": {
        "save_vs_package_both_flushed": round(median["package_save_fsync"] / median["nabla_save"], 3),
        "save_vs_package_neither_flushed": round(median["package_save"] / median["nabla_save_no_fsync"], 3),
        "load_vs_package": round(median["package_load"] / median["nabla_load"], 3)}}))
    for path in (ours, theirs):
        path.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
