"""The benchmarks of bench_conv.c in PyTorch, printed as the same JSON lines
(impl "torch"), for a side-by-side run.

    python3 benchmarks/torch_conv.py [--device cpu|cuda] [--dtype f32|bf16|f16] [--batch N]
                                     [--repeat N] [--only resnet|mobilenet|bn] [--threads N]
"""
import argparse
import json
import os
import statistics
import time

import torch
import torch.nn.functional as F

LAYERS = [  # net, name, in, out, size, kernel, stride, groups (as bench_conv.c)
    ("resnet18", "conv1_7x7", 3, 64, 224, 7, 2, 1),
    ("resnet18", "layer1_3x3", 64, 64, 56, 3, 1, 1),
    ("resnet18", "layer2_3x3_s2", 64, 128, 56, 3, 2, 1),
    ("resnet18", "layer2_3x3", 128, 128, 28, 3, 1, 1),
    ("resnet18", "layer2_down_1x1_s2", 64, 128, 56, 1, 2, 1),
    ("resnet18", "layer3_3x3", 256, 256, 14, 3, 1, 1),
    ("resnet18", "layer4_3x3", 512, 512, 7, 3, 1, 1),
    ("mobilenetv2", "dw3x3_32x112", 32, 32, 112, 3, 1, 32),
    ("mobilenetv2", "dw3x3_96x112_s2", 96, 96, 112, 3, 2, 96),
    ("mobilenetv2", "dw3x3_144x56", 144, 144, 56, 3, 1, 144),
    ("mobilenetv2", "dw3x3_192x28", 192, 192, 28, 3, 1, 192),
    ("mobilenetv2", "dw3x3_576x14", 576, 576, 14, 3, 1, 576),
    ("mobilenetv2", "dw3x3_960x7", 960, 960, 7, 3, 1, 960),
    ("mobilenetv2", "pw1x1_144to24x56", 144, 24, 56, 1, 1, 1),
    ("mobilenetv2", "pw1x1_384to64x14", 384, 64, 14, 1, 1, 1),
    ("mobilenetv2", "pw1x1_960to160x7", 960, 160, 7, 1, 1, 1),
]
DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}


def median_ms(fn, repeat, device):
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()
    fn()
    times = []
    for _ in range(repeat):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="f32", choices=sorted(DTYPES))
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--only", choices=["resnet", "mobilenet", "bn"])
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    # as nabla: f32 convolutions and matmuls without TF32, and cuDNN's engines
    # timed once per shape
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    device, dtype = torch.device(args.device), DTYPES[args.dtype]
    base = {"impl": "torch", "batch": args.batch, "dtype": args.dtype, "device": args.device}
    for net, name, cin, cout, size, k, stride, groups in LAYERS:
        if args.only and args.only != ("resnet" if net == "resnet18" else "mobilenet"):
            continue
        out = (size + 2 * (k // 2) - k) // stride + 1
        macs = args.batch * cout * out * out * (cin // groups) * k * k
        for backward in (False, True):
            x = torch.randn(args.batch, cin, size, size, device=device, dtype=dtype, requires_grad=backward)
            w = torch.randn(cout, cin // groups, k, k, device=device, dtype=dtype, requires_grad=backward)

            def run():
                y = F.conv2d(x, w, None, stride, k // 2, 1, groups)
                if backward:
                    y.backward(torch.ones_like(y))
            ms = median_ms(run, args.repeat, device)
            print(json.dumps({**base, "bench": "conv", "net": net, "layer": name,
                              "pass": "fwd+bwd" if backward else "fwd", "ms": round(ms, 3),
                              "GFLOP/s": round(2 * macs * (3 if backward else 1) / ms * 1e-6, 1)}), flush=True)
    if args.only in (None, "bn"):
        for backward in (False, True):
            x = torch.randn(args.batch, 64, 56, 56, device=device, dtype=dtype, requires_grad=backward)
            w = torch.ones(64, device=device, dtype=dtype, requires_grad=backward)
            b = torch.zeros(64, device=device, dtype=dtype, requires_grad=backward)
            rm, rv = torch.zeros(64, device=device), torch.ones(64, device=device)

            def run():
                y = F.batch_norm(x, rm, rv, w, b, True, 0.1, 1e-5)
                if backward:
                    y.backward(torch.ones_like(y))
            ms = median_ms(run, args.repeat, device)
            nbytes = x.numel() * x.element_size() * (5 if backward else 2)
            print(json.dumps({**base, "bench": "batch_norm", "layer": "bn_64x56",
                              "pass": "fwd+bwd" if backward else "fwd", "ms": round(ms, 3),
                              "GB/s": round(nbytes / ms * 1e-6, 1)}), flush=True)


if __name__ == "__main__":
    main()
