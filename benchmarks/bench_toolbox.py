"""The training toolbox on the CPU beside PyTorch, in one process, as JSON lines: sorting,
selection, scans, sampling, the fused losses and activations (forward and backward), and the
optimizer steps over --optim-params parameters in 50 tensors.

Each op runs alternately in nabla and in PyTorch on the same values (a warm-up, then --repeat
rounds); a line gives both medians in ms and ratio = PyTorch's time / nabla's (above 1: nabla is
faster).

    python benchmarks/bench_toolbox.py [--repeat N] [--threads T] [--only sort|loss|activation|optim]
                                       [--optim-params N]
"""
import argparse
import json
import statistics
import time

import numpy as np
import torch

import nabla as nb


def timed(fn):
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def compare(bench, shape, nabla_fn, torch_fn, repeat, **extra):
    nabla_fn(), torch_fn()
    ours, theirs = [], []
    for _ in range(repeat):
        ours.append(timed(nabla_fn))
        theirs.append(timed(torch_fn))
    ms, ref_ms = statistics.median(ours), statistics.median(theirs)
    print(json.dumps({"bench": bench, "impl": "nabla", "device": "cpu", "shape": shape, "dtype": "f32",
                      "ms": round(ms, 4), "ref_impl": f"torch {torch.__version__}", "ref_ms": round(ref_ms, 4),
                      "ratio": round(ref_ms / ms, 3), **extra}), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--threads", type=int, default=0, help="PyTorch's threads (0: its default)")
    parser.add_argument("--only", choices=("sort", "loss", "activation", "optim"), help="one group of benchmarks")
    parser.add_argument("--optim-params", type=int, default=100_000_000,
                        help="the parameters the optimizer benchmarks step, in 50 tensors")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    if args.only in (None, "sort"):
        sorting(rng, args.repeat)
    if args.only in (None, "loss"):
        losses(rng, args.repeat)
    if args.only in (None, "activation"):
        activations(rng, args.repeat)
    if args.only in (None, "optim"):
        optimizers(rng, args.repeat, args.optim_params)


def with_backward(fn, *tensors):
    """fn(*tensors) and its gradient into the first, from a fresh leaf each call."""
    def run():
        leaf = tensors[0].detach().requires_grad_(True)
        fn(leaf, *tensors[1:]).backward()
    return run


def losses(rng, r):
    n = 1 << 22
    x0, t0 = rng.standard_normal(n).astype(np.float32), rng.uniform(0, 1, n).astype(np.float32)
    x, t, tx, tt = nb.tensor(x0), nb.tensor(t0), torch.from_numpy(x0), torch.from_numpy(t0)
    F, TF = nb.nn.functional, torch.nn.functional
    for name in ("binary_cross_entropy_with_logits", "mse_loss", "l1_loss", "huber_loss", "smooth_l1_loss"):
        compare(name, "2^22", lambda n=name: getattr(F, n)(x, t), lambda n=name: getattr(TF, n)(tx, tt), r,
                **{"pass": "forward"})
        compare(name, "2^22", with_backward(lambda a, b, n=name: getattr(F, n)(a, b), x, t),
                with_backward(lambda a, b, n=name: getattr(TF, n)(a, b), tx, tt), r,
                **{"pass": "forward+backward"})


def torch_lion(params, lr, betas=(0.9, 0.99), weight_decay=0.0):
    """Lion as PyTorch users write it (torch has none): one step over params with .grad."""
    state = {}

    def step():
        with torch.no_grad():
            for p in params:
                m = state.setdefault(p, torch.zeros_like(p))
                p.mul_(1 - lr * weight_decay)
                update = m.mul(betas[0]).add_(p.grad, alpha=1 - betas[0]).sign_()
                p.add_(update, alpha=-lr)
                m.mul_(betas[1]).add_(p.grad, alpha=1 - betas[1])
    return step


def optimizers(rng, r, total):
    """One step of each rule over total f32 parameters in 50 tensors, gradients set once."""
    sizes = [total // 50] * 50
    values = [rng.standard_normal(n).astype(np.float32) for n in sizes]
    grads = [rng.standard_normal(n).astype(np.float32) for n in sizes]
    ours = [nb.nn.Parameter(nb.tensor(v)) for v in values]
    theirs = [torch.nn.Parameter(torch.from_numpy(v.copy())) for v in values]
    for p, q, g in zip(ours, theirs, grads):
        p.grad, q.grad = nb.tensor(g), torch.from_numpy(g)
    rules = [("AdamW", dict(lr=1e-4, weight_decay=0.01)), ("Adam", dict(lr=1e-4)), ("SGD", dict(lr=1e-4, momentum=0.9)),
             ("RMSprop", dict(lr=1e-4, momentum=0.9, centered=True)), ("Adagrad", dict(lr=1e-4)),
             ("NAdam", dict(lr=1e-4)), ("RAdam", dict(lr=1e-4))]
    shape = f"{total // 1_000_000}M in 50"
    for name, kw in rules:
        opt = getattr(nb.optim, name)(ours, **kw)
        for foreach in (False, True):
            ref = getattr(torch.optim, name)(theirs, foreach=foreach, **kw)
            compare(name.lower(), shape, opt.step, ref.step, r, **{"pass": "step", "torch_foreach": foreach})
            del ref
        del opt
    opt = nb.optim.Lion(ours, lr=1e-4, weight_decay=0.01)
    compare("lion", shape, opt.step, torch_lion(theirs, 1e-4, weight_decay=0.01), r,
            **{"pass": "step", "torch_foreach": False})


def activations(rng, r):
    x0 = rng.standard_normal(1 << 22).astype(np.float32)
    x, tx = nb.tensor(x0), torch.from_numpy(x0)
    F, TF = nb.nn.functional, torch.nn.functional
    for name in ("elu", "selu", "softplus", "mish", "logsigmoid", "hardtanh", "softshrink"):
        compare(name, "2^22", lambda n=name: getattr(F, n)(x), lambda n=name: getattr(TF, n)(tx), r,
                **{"pass": "forward"})
        compare(name, "2^22", with_backward(lambda a, n=name: getattr(F, n)(a).sum(), x),
                with_backward(lambda a, n=name: getattr(TF, n)(a).sum(), tx), r,
                **{"pass": "forward+backward"})


def sorting(rng, r):
    one_row = rng.standard_normal(1 << 20).astype(np.float32)
    rows = rng.standard_normal((1024, 1024)).astype(np.float32)
    a, ta = nb.tensor(one_row), torch.from_numpy(one_row)
    b, tb = nb.tensor(rows), torch.from_numpy(rows)
    compare("sort", "2^20", lambda: nb.sort(a), lambda: torch.sort(ta), r)
    compare("sort", "1024x1024 dim -1", lambda: nb.sort(b), lambda: torch.sort(tb), r)
    compare("sort", "1024x1024 dim 0", lambda: nb.sort(b, dim=0), lambda: torch.sort(tb, dim=0), r)
    compare("sort_stable", "2^20", lambda: nb.sort(a, stable=True), lambda: torch.sort(ta, stable=True), r)
    compare("argsort_descending", "2^20", lambda: nb.argsort(a, descending=True),
            lambda: torch.argsort(ta, descending=True), r)
    for k in (10, 1000):
        compare("topk", "2^20", lambda k=k: nb.topk(a, k), lambda k=k: torch.topk(ta, k), r, k=k)
    compare("topk", "1024x1024", lambda: nb.topk(b, 50), lambda: torch.topk(tb, 50), r, k=50)
    big = rng.standard_normal(1 << 22).astype(np.float32)
    c, tc = nb.tensor(big), torch.from_numpy(big)
    compare("cumsum", "2^22", lambda: nb.cumsum(c, 0), lambda: torch.cumsum(tc, 0), r)
    compare("cumsum", "1024x1024 dim 0", lambda: nb.cumsum(b, 0), lambda: torch.cumsum(tb, 0), r)
    compare("logcumsumexp", "1024x1024 dim 1", lambda: nb.logcumsumexp(b, 1),
            lambda: torch.logcumsumexp(tb, 1), r)
    edges = np.sort(rng.standard_normal(1024)).astype(np.float32)
    e, te = nb.tensor(edges), torch.from_numpy(edges)
    compare("searchsorted", "2^20 into 1024", lambda: nb.searchsorted(e, a), lambda: torch.searchsorted(te, ta), r)
    probs = rng.uniform(0, 1, (64, 50257)).astype(np.float32)
    p, tp = nb.tensor(probs), torch.from_numpy(probs)
    compare("multinomial", "64x50257", lambda: nb.multinomial(p, 1), lambda: torch.multinomial(tp, 1), r,
            samples=1)
    compare("multinomial", "64x50257", lambda: nb.multinomial(p, 32), lambda: torch.multinomial(tp, 32), r,
            samples=32)


if __name__ == "__main__":
    main()
