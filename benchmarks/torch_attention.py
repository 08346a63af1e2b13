"""The CUDA half of bench_attention.c in PyTorch: the same JSON lines (impl
"torch-flash" or "torch-cudnn") for torch.nn.functional.
scaled_dot_product_attention in bf16 at head dims 64 and 128, sequence 512
to 8192 with batch x sequence = 16384 tokens and 2048 wide, causal and not
(forward and forward+backward TFLOP/s and peak memory), then the peak memory
of batch 1, 16 heads of 128 from sequence 1024 to 8 x --max-seq.

--backend pins SDPA to one kernel (torch.nn.attention.sdpa_kernel): flash
(FlashAttention-2, the default) or cudnn (cuDNN's fused attention). A shape
the backend refuses is a line with "error" instead of the figures. The
first line gives the device and the torch, CUDA and cuDNN versions.

    python3 benchmarks/torch_attention.py [--backend flash|cudnn] [--max-seq N] [--repeats N]
"""
import argparse
import json
import statistics

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

BACKENDS = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION}
IMPL = "torch"


def emit(**fields):
    print(json.dumps({"impl": IMPL, **fields}), flush=True)


def one_pass(q, k, v, g, causal):
    y = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    if g is not None:
        y.backward(g)
        q.grad = k.grad = v.grad = None


def time_pass(q, k, v, g, causal, repeats):
    """Median ms per pass (events around 10 passes after a warm-up round) and
    the peak memory of one pass beyond its inputs, in MiB."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for r in range(-1, repeats):
        start.record()
        for _ in range(10):
            one_pass(q, k, v, g, causal)
        end.record()
        end.synchronize()
        if r >= 0:
            times.append(start.elapsed_time(end) / 10)
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    one_pass(q, k, v, g, causal)
    torch.cuda.synchronize()
    return statistics.median(times), (torch.cuda.max_memory_allocated() - base) / 2**20


def case(batch, heads, seq, dim, causal, repeats, gen):
    shape = (batch, heads, seq, dim)
    q, k, v, g = (torch.randn(shape, generator=gen, device="cuda", dtype=torch.bfloat16) for _ in range(4))
    flops = 4 * batch * heads * seq * seq * dim / (2 if causal else 1)
    for name in ("fwd", "fwd_bwd"):
        if name == "fwd_bwd":
            for t in (q, k, v):
                t.requires_grad_(True)
        where = dict(bench="attention", **{"pass": name}, dtype="bf16",
                     shape=f"b{batch} h{heads} s{seq} d{dim} {'causal' if causal else 'full'}")
        try:
            ms, peak = time_pass(q, k, v, g if name == "fwd_bwd" else None, causal, repeats)
        except RuntimeError as error:  # the pinned backend does not take this shape
            emit(**where, error=str(error).splitlines()[0])
            continue
        count = 3.5 * flops if name == "fwd_bwd" else flops
        emit(**where, ms=round(ms, 4), **{"TFLOP/s": round(count / ms * 1e-9, 1)}, peak_mib=round(peak, 1))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", choices=sorted(BACKENDS), default="flash")
    parser.add_argument("--max-seq", type=int, default=8192)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    global IMPL
    IMPL = f"torch-{args.backend}"
    props = torch.cuda.get_device_properties(0)
    emit(device=props.name, torch=torch.__version__, cuda=torch.version.cuda,
         cudnn=torch.backends.cudnn.version(), backend=args.backend)
    gen = torch.Generator(device="cuda").manual_seed(1)
    with sdpa_kernel(BACKENDS[args.backend]):
        run(args, gen)


def run(args, gen):
    for dim in (64, 128):
        seq = 512
        while seq <= args.max_seq:
            for causal in (False, True):
                case(16384 // seq, 2048 // dim, seq, dim, causal, args.repeats, gen)
            seq *= 2
    seq = 1024
    while seq <= 8 * args.max_seq:
        case(1, 16, seq, 128, True, 1, gen)
        seq *= 2


if __name__ == "__main__":
    main()
