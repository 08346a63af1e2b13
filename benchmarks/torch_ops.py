"""The CUDA benchmarks of bench_cuda.c in PyTorch, printed as the same JSON
lines (impl "torch"), for a side-by-side run on one GPU.

    python3 benchmarks/torch_ops.py [--repeat N] [--iters N] [--quick]
"""
import argparse
import json
import statistics

import torch


def time_op(fn, repeat, iters):
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for r in range(-1, repeat):  # round -1 warms up
        start.record()
        for _ in range(iters):
            fn()
        end.record()
        end.synchronize()
        if r >= 0:
            times.append(start.elapsed_time(end) / iters)
    return statistics.median(times)


def emit(**fields):
    print(json.dumps({"impl": "torch", **fields}), flush=True)


def bandwidth(bench, dtype, shape, ms, nbytes, ceiling, **extra):
    gbs = nbytes / ms * 1e-6
    emit(bench=bench, **extra, dtype=dtype, shape=shape, ms=round(ms, 4), **{"GB/s": round(gbs, 1)},
         of_copy=round(gbs / ceiling, 3) if ceiling else 1.0)
    return gbs


def norms(rand, t, rows, width, ceiling):
    """LayerNorm and RMSNorm over [rows, width]: forward, and forward+backward."""
    F = torch.nn.functional
    for name, dtype, size in (("f32", torch.float32, 4), ("bf16", torch.bfloat16, 2)):
        for bench in ("layer_norm", "rms_norm") if hasattr(F, "rms_norm") else ("layer_norm",):
            x, w, b, g = rand(rows, width, dtype=dtype), rand(width, dtype=dtype), rand(width, dtype=dtype), \
                rand(rows, width, dtype=dtype)
            if bench == "layer_norm":
                fwd = lambda: F.layer_norm(x, (width,), w, b, 1e-5)
            else:
                fwd = lambda: F.rms_norm(x, (width,), w, 1e-6)
            tensor = rows * width * size
            shape = f"{rows}x{width}"
            bandwidth(bench, name, shape, t(fwd), 2 * tensor, ceiling, **{"pass": "fwd"})
            for p in (x, w, b):
                p.requires_grad_(True)

            def train():
                fwd().backward(g)
                x.grad = w.grad = b.grad = None

            bandwidth(bench, name, shape, t(train), 5 * tensor, ceiling, **{"pass": "fwd_bwd"})
            del x, w, b, g


def flops(bench, dtype, shape, ms, count):
    emit(bench=bench, dtype=dtype, shape=shape, ms=round(ms, 4), **{"TFLOP/s": round(count / ms * 1e-9, 1)})


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    t = lambda fn: time_op(fn, args.repeat, args.iters)
    dev = torch.device("cuda")
    props = torch.cuda.get_device_properties(dev)
    emit(device=props.name, torch=torch.__version__, memory_gib=round(props.total_memory / 2**30, 1))
    log2 = 24 if args.quick else 28
    n = 1 << log2
    gen = torch.Generator(device=dev).manual_seed(1)
    rand = lambda *shape, dtype=torch.float32: torch.rand(*shape, generator=gen, device=dev, dtype=dtype) * 2 - 1

    x = rand(n)
    ms = t(lambda: x.clone())
    ceiling = bandwidth("copy", "f32", f"2^{log2}", ms, 8 * n, 0)
    y = rand(n)
    bandwidth("add", "f32", f"2^{log2}", t(lambda: x + y), 12 * n, ceiling)
    del x, y
    side = 1 << (log2 // 2)
    a, row = rand(side, side), rand(side)
    bandwidth("mul_bcast", "f32", f"[2^{log2 // 2},2^{log2 // 2}]*[2^{log2 // 2}]", t(lambda: a * row),
              8 * side * side + 4 * side, ceiling)
    del a, row
    s = 4096 if args.quick else 8192
    for name, dtype, size in (("f32", torch.float32, 4), ("bf16", torch.bfloat16, 2)):
        m = rand(s, s, dtype=dtype)
        bandwidth("softmax", name, f"{s}x{s}", t(lambda: torch.softmax(m, -1)), 2 * s * s * size, ceiling)
        del m
    norms(rand, t, 4096 if args.quick else 16384, 4096, ceiling)
    sizes = [2048] if args.quick else [4096, 8192]
    for size in sizes:
        for name, dtype, tf32 in (("bf16", torch.bfloat16, False), ("f16", torch.float16, False),
                                  ("f32", torch.float32, False), ("tf32", torch.float32, True)):
            torch.backends.cuda.matmul.allow_tf32 = tf32
            p, q = rand(size, size, dtype=dtype), rand(size, size, dtype=dtype)
            flops("matmul", name, f"{size}^3", t(lambda: p @ q), 2 * size**3)
            del p, q
    torch.backends.cuda.matmul.allow_tf32 = False
    p, q = rand(64, 1024, 1024, dtype=torch.bfloat16), rand(64, 1024, 64, dtype=torch.bfloat16)
    flops("bmm", "bf16", "64x[1024,1024]@[1024,64]", t(lambda: p @ q), 2 * 64 * 1024 * 1024 * 64)


if __name__ == "__main__":
    main()
