#!/usr/bin/env python3
"""Trains the C example's byte-level GPT (examples/train_gpt.c) from Python, the way a PyTorch user
writes it: the same model (nn.GPT, --arch gpt2 or llama), AdamW with weight decay on the matrices,
warmup and cosine schedule, clipping at norm 1, the same training windows from the seeded generator
and the same validation windows of the held-out last 5%, so that on the same seed it takes the C
example's steps. A tqdm bar shows the loss and tokens/s; at the end a text is sampled with
temperature and top-k through the KV cache, and the loss curves go to a PNG (matplotlib).

    examples/python/train_gpt.py [--device cpu|cuda] [--text PATH] [--arch gpt2|llama] [--layers N]
        [--dim N] [--heads N] [--kv-heads N] [--context N] [--batch N] [--steps N] [--lr RATE]
        [--dtype f32|bf16] [--eval-every N] [--sample N] [--temperature T] [--top-k K] [--seed S]
        [--save PATH] [--plot PATH]
"""
import argparse
import math
import os
import subprocess
import sys
import time

import numpy as np

import nabla as nb
import nabla.nn as nn

VOCAB = 256  # bytes


def read_text(path):
    """The bytes of the file, of $NABLA_TEXT, else of `bible gen1:1-rev22:21` (Debian's bible-kjv)."""
    path = path or os.environ.get("NABLA_TEXT")
    try:
        if path:
            with open(path, "rb") as f:
                data = f.read()
        else:
            data = subprocess.run(["bible", "gen1:1-rev22:21"], check=True, capture_output=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        sys.exit(f"train_gpt.py: cannot read {path or 'the output of bible (install bible-kjv or pass --text)'}: {e}")
    if len(data) < 1000:
        sys.exit(f"train_gpt.py: the text has {len(data)} bytes; it needs at least 1000")
    return np.frombuffer(data, dtype=np.uint8)


def unigram_entropy(data):
    """-sum p log p of the byte frequencies, in nats: the loss of a model that ignores context."""
    p = np.bincount(data, minlength=VOCAB) / len(data)
    return float(-sum(q * math.log(q) for q in p if q > 0))


def batch_at(data, starts, context, device):
    """Inputs and next-byte targets [len(starts), context] of the windows at starts."""
    window = data[np.asarray(starts)[:, None] + np.arange(context + 1)].astype(np.int64)
    return nb.from_numpy(window[:, :-1].copy()).to(device), nb.from_numpy(window[:, 1:].copy()).to(device)


@nb.no_grad()
def validation_loss(model, data, split, args):
    """The mean loss over up to 8 batches of evenly spaced windows of the held-out tail."""
    model.eval()
    span = len(data) - split
    windows = (span - 1) // args.context
    batches = min(max(windows // args.batch, 1), 8)
    batch = args.batch if windows >= args.batch else max(windows, 1)
    total = 0.0
    for k in range(batches):
        starts = [split + ((k * batch + b) * args.context) % (span - args.context - 1) for b in range(batch)]
        total += model.loss(*batch_at(data, starts, args.context, args.device)).item()
    model.train()
    return total / batches


def sample_byte(logits, args, generator):
    """A byte drawn from logits [VOCAB] (float64 numpy) with temperature, among the top-k."""
    cut = np.sort(logits)[::-1][min(args.top_k, VOCAB) - 1]
    weights = np.where(logits >= cut, np.exp((logits - logits.max()) / args.temperature), 0.0)
    r = nb.rand((), generator=generator, dtype=nb.float64).item() * weights.sum()
    below = np.nonzero(np.cumsum(weights) > r)[0]
    return int(below[0]) if len(below) else VOCAB - 1


@nb.no_grad()
def generate(model, prompt, args, generator):
    """Continues prompt with args.sample bytes through the KV cache."""
    model.eval()
    model.set_kv_cache(1, args.context)
    tokens = list(prompt.encode())[-args.context:]
    out, used = [], 0
    for _ in range(args.sample):
        if used + len(tokens) > args.context:  # the window is full: start over from the last byte
            model.set_kv_cache(1, args.context)
            used = 0
        logits = model(nb.tensor([tokens], dtype=nb.int64, device=args.device))
        used += len(tokens)
        tokens = [sample_byte(logits[0, -1].double().cpu().numpy(), args, generator)]
        out.append(tokens[0])
    model.set_kv_cache(1, 0)
    model.train()
    return prompt + bytes(out).decode("utf-8", errors="replace")


def plot(path, losses, evals):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    plt.figure(figsize=(7, 4))
    plt.plot(range(1, len(losses) + 1), losses, lw=0.6, label="training loss per step")
    if evals:
        plt.plot(*zip(*evals), "o-", label="validation loss")
    plt.xlabel("step")
    plt.ylabel("cross-entropy (nats per byte)")
    plt.title("train_gpt.py")
    plt.legend()
    plt.tight_layout()
    plt.savefig(path, dpi=120)


def parse():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if nb.cuda.is_available() else "cpu")
    parser.add_argument("--text", help="a text file (default: $NABLA_TEXT, else `bible gen1:1-rev22:21`)")
    parser.add_argument("--arch", choices=["gpt2", "llama"], default="gpt2",
                        help="gpt2: LayerNorm, GELU, learned positions, tied embeddings; llama: RMSNorm, "
                             "SwiGLU, RoPE, separate output (default gpt2)")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--kv-heads", type=int, default=0, help="key/value heads (default: --heads)")
    parser.add_argument("--context", type=int, default=128, help="tokens per sequence")
    parser.add_argument("--batch", type=int, default=16, help="sequences per step")
    parser.add_argument("--steps", type=int, default=600, help="optimizer steps")
    parser.add_argument("--lr", type=float, default=1e-3, help="AdamW's peak rate (1/20 warmup, cosine to 1/10)")
    parser.add_argument("--dtype", choices=["f32", "bf16"], default=None,
                        help="parameters (default bf16 on cuda, f32 on cpu; bf16 steps through f32 master weights)")
    parser.add_argument("--eval-every", type=int, default=100, help="steps between validation losses")
    parser.add_argument("--sample", type=int, default=300, help="bytes to sample at the end (0: none)")
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--top-k", type=int, default=40, help="sample among the k likeliest bytes")
    parser.add_argument("--seed", type=int, default=1, help="seeds initialization, batches and sampling")
    parser.add_argument("--save", help="write the model's state dict there at the end (safetensors)")
    parser.add_argument("--plot", default="train_gpt_loss.png", help="where to save the loss curves ('' for none)")
    args = parser.parse_args()
    if min(args.layers, args.dim, args.heads, args.batch, args.steps, args.eval_every, args.top_k) < 1 or \
            args.context < 2 or args.sample < 0 or not args.lr > 0 or not args.temperature > 0:
        parser.error("sizes, steps, --eval-every and --top-k must be positive, --context at least 2, "
                     "--lr and --temperature above 0")
    if args.dtype is None:
        args.dtype = "bf16" if args.device == "cuda" else "f32"
    return args


def main():
    args = parse()
    from tqdm import tqdm

    data = read_text(args.text)
    split = len(data) - len(data) // 20  # the last 5% is held out
    if split - args.context - 1 <= 0 or len(data) - split <= args.context + 1:
        sys.exit(f"train_gpt.py: {len(data)} bytes of text are too few for context {args.context}")
    generator = nb.Generator(args.seed)
    dtype = nb.bfloat16 if args.dtype == "bf16" else nb.float32
    model = nn.GPT(VOCAB, args.context, args.layers, args.dim, args.heads, args.kv_heads or None, arch=args.arch,
                   device=args.device, dtype=dtype, generator=generator)
    params = list(model.parameters())
    optimizer = nb.optim.AdamW([{"params": [p for p in params if p.ndim == 2], "weight_decay": 0.1},
                                {"params": [p for p in params if p.ndim != 2], "weight_decay": 0.0}],
                               lr=args.lr, betas=(0.9, 0.95), eps=1e-8)
    schedule = nb.optim.lr_scheduler.WarmupCosineLR(optimizer, args.steps // 20 + 1, args.steps,
                                                     min_lr=args.lr / 10)
    entropy = unigram_entropy(data[:split])
    count = sum(p.numel() for p in params)
    print(f"train_gpt.py: {args.arch}, {count} parameters ({args.layers} layers, {args.dim} wide, {args.heads} "
          f"heads), {len(data)} bytes of text ({len(data) - split} held out), context {args.context}, batch "
          f"{args.batch}, {args.steps} steps, {args.dtype} on {args.device}")
    print(f"unigram entropy of the training bytes: {entropy:.4f} nats")
    losses, evals, val = [], [], float("nan")
    trained, tokens = 0.0, 0
    bar = tqdm(range(args.steps), unit="step", mininterval=1.0)
    for step in bar:
        start = time.perf_counter()
        starts = nb.randint(0, split - args.context - 1, (args.batch,), generator=generator).tolist()
        x, y = batch_at(data, starts, args.context, args.device)
        optimizer.zero_grad()
        loss = model.loss(x, y)
        loss.backward()
        nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        losses.append(loss.detach())
        tokens += args.batch * args.context
        if step % 10 == 0 or step + 1 == args.steps:
            last_loss = loss.item()  # waits for the device, so that the time is the work's
        trained += time.perf_counter() - start  # validation time is not training time
        if step % 10 == 0:
            bar.set_postfix(loss=f"{last_loss:.4f}", tokens_per_s=f"{tokens / trained:.0f}")
        if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
            val = validation_loss(model, data, split, args)
            evals.append((step + 1, val))
            bar.write(f"step {step + 1}: train loss {loss.item():.4f}, val loss {val:.4f} (unigram entropy "
                      f"{entropy:.4f}), {tokens / trained:.0f} tokens/s")
    bar.close()
    print(f"done: {trained:.1f} s, {tokens / trained:.0f} tokens/s; final val loss {val:.4f} vs unigram entropy "
          f"{entropy:.4f} nats")
    if args.save:
        nb.save(model.state_dict(), args.save)
        print(f"train_gpt.py: the model's state dict in {args.save}")
    if args.sample:
        print(f"--- sample (temperature {args.temperature:.2f}, top-k {args.top_k}) ---")
        print(generate(model, "And God said", args, generator))
        print("---")
    if args.plot:
        plot(args.plot, [l.item() for l in losses], evals)
        print(f"train_gpt.py: loss curves in {args.plot}")


if __name__ == "__main__":
    main()
