"""The PyTorch twin of examples/train_gpt.c: the same byte-level GPT (gpt2:
LayerNorm, tanh GELU, learned positions, tied embeddings, biases; llama:
RMSNorm, SwiGLU, RoPE, no biases, a separate output layer), GPT-2's
initialization, AdamW (betas 0.9/0.95, weight decay 0.1 on matrices; fused on
the GPU), warmup + cosine schedule, clipping at norm 1, the same training
windows (drawn from nabla's Philox stream, src/core/philox.h) and the same
validation windows of the held-out last 5%. Eager mode with
F.scaled_dot_product_attention; bf16 autocast on the GPU.

    python3 benchmarks/torch_gpt.py [--device cpu|cuda] [--text PATH] [--arch gpt2|llama]
        [--layers N] [--dim N] [--heads N] [--kv-heads N] [--context N] [--batch N]
        [--steps N] [--lr RATE] [--eval-every N] [--seed S] [--peak-tflops F] [--threads N]
"""
import argparse
import contextlib
import math
import os
import subprocess
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from torch_cnn import philox_keys, warmup_cosine

VOCAB = 256


def read_text(path):
    path = path or os.environ.get("NABLA_TEXT")
    if path:
        with open(path, "rb") as f:
            return np.frombuffer(f.read(), dtype=np.uint8)
    return np.frombuffer(subprocess.run(["bible", "gen1:1-rev22:21"], check=True,
                                        capture_output=True).stdout, dtype=np.uint8)


def rope(x, base=10000.0):
    """Rotate-half RoPE of x [B, H, S, D] at positions 0..S-1."""
    d, s = x.shape[-1], x.shape[-2]
    freqs = base ** (-torch.arange(0, d // 2, device=x.device, dtype=torch.float32) / (d // 2))
    angles = torch.arange(s, device=x.device, dtype=torch.float32)[:, None] * freqs
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x1, x2 = x[..., : d // 2], x[..., d // 2:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


def causal_attention(q, k, v):
    if hasattr(F, "scaled_dot_product_attention"):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    # PyTorch before 2.0 (Debian's CPU build): the same formula written out
    s = q.shape[-2]
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
    hidden = torch.ones(s, s, dtype=torch.bool, device=q.device).triu(1)
    return scores.masked_fill(hidden, float("-inf")).softmax(-1) @ v


class RMSNorm(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * self.weight


class Attention(nn.Module):
    def __init__(self, a):
        super().__init__()
        d = a.dim
        self.heads, self.kv_heads, self.llama = a.heads, a.kv_heads or a.heads, a.arch == "llama"
        self.head_dim = d // a.heads
        self.qkv = nn.Linear(d, (self.heads + 2 * self.kv_heads) * self.head_dim, bias=not self.llama)
        self.out = nn.Linear(d, d, bias=not self.llama)

    def forward(self, x):
        b, s, _ = x.shape
        q, k, v = self.qkv(x).split([self.heads * self.head_dim, self.kv_heads * self.head_dim,
                                     self.kv_heads * self.head_dim], dim=-1)
        q = q.view(b, s, self.heads, self.head_dim).transpose(1, 2)
        k = k.view(b, s, self.kv_heads, self.head_dim).transpose(1, 2)
        v = v.view(b, s, self.kv_heads, self.head_dim).transpose(1, 2)
        if self.llama:
            q, k = rope(q), rope(k)
        if self.kv_heads != self.heads:  # query head h reads key/value head h // group
            k = k.repeat_interleave(self.heads // self.kv_heads, dim=1)
            v = v.repeat_interleave(self.heads // self.kv_heads, dim=1)
        y = causal_attention(q, k, v)
        return self.out(y.transpose(1, 2).reshape(b, s, -1))


class MLP(nn.Module):
    def __init__(self, a):
        super().__init__()
        d, self.llama = a.dim, a.arch == "llama"
        hidden = (8 * d // 3 + 63) // 64 * 64 if self.llama else 4 * d
        self.fc1 = nn.Linear(d, 2 * hidden if self.llama else hidden, bias=not self.llama)
        self.fc2 = nn.Linear(hidden, d, bias=not self.llama)

    def forward(self, x):
        h = self.fc1(x)
        if self.llama:
            a, b = h.chunk(2, dim=-1)
            return self.fc2(F.silu(a) * b)
        return self.fc2(F.gelu(h, approximate="tanh"))


class Block(nn.Module):
    """nabla's pre-norm block, with its parameter names (blocks.N.attn.qkv, blocks.N.mlp.fc1...), so the
    twin loads nabla's checkpoints (examples/train_gpt --save) with load_state_dict."""

    def __init__(self, a):
        super().__init__()
        norm = (lambda: RMSNorm(a.dim)) if a.arch == "llama" else (lambda: nn.LayerNorm(a.dim))
        self.norm1, self.norm2 = norm(), norm()
        self.attn, self.mlp = Attention(a), MLP(a)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class GPT(nn.Module):
    def __init__(self, a):
        super().__init__()
        llama = a.arch == "llama"
        self.wte = nn.Embedding(VOCAB, a.dim)
        self.wpe = None if llama else nn.Embedding(a.context, a.dim)
        self.blocks = nn.ModuleList(Block(a) for _ in range(a.layers))
        self.norm = RMSNorm(a.dim) if llama else nn.LayerNorm(a.dim)
        self.head = nn.Linear(a.dim, VOCAB, bias=False) if llama else None
        for name, p in self.named_parameters():  # GPT-2's initialization, as nabla's nb_nn_gpt
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * a.layers) if name.endswith(("out.weight", "fc2.weight")) else 0.02
                nn.init.normal_(p, 0, std)
            elif "bias" in name:
                nn.init.zeros_(p)

    def forward(self, tokens):
        h = self.wte(tokens)
        if self.wpe is not None:
            h = h + self.wpe(torch.arange(tokens.shape[1], device=tokens.device))
        for block in self.blocks:
            h = block(h)
        h = self.norm(h)
        return self.head(h) if self.head is not None else h @ self.wte.weight.t()


def windows(data, starts, context, device):
    idx = starts[:, None] + np.arange(context + 1)[None, :]
    w = torch.from_numpy(data[idx].astype(np.int64)).to(device)
    return w[:, :-1], w[:, 1:]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--text")
    p.add_argument("--arch", default="gpt2", choices=["gpt2", "llama"])
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--kv-heads", type=int, default=0)
    p.add_argument("--context", type=int, default=128)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--peak-tflops", type=float, default=989)
    p.add_argument("--threads", type=int, default=0)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    device, cuda = torch.device(a.device), a.device == "cuda"
    torch.manual_seed(a.seed)
    data = read_text(a.text)
    size = len(data)
    split = size - size // 20
    counts = np.bincount(data[:split], minlength=VOCAB) / split
    entropy = -sum(c * math.log(c) for c in counts if c > 0)
    model = GPT(a).to(device)
    params = sum(p.numel() for p in model.parameters())
    matrices = [p for p in model.parameters() if p.dim() == 2]
    vectors = [p for p in model.parameters() if p.dim() != 2]
    opt = torch.optim.AdamW([{"params": matrices, "weight_decay": 0.1}, {"params": vectors, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.95), eps=1e-8, **({"fused": True} if cuda else {}))
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else contextlib.nullcontext()
    flops_per_token = 6.0 * params + 12.0 * a.layers * a.context * a.dim
    print(f"torch_gpt: {a.arch}, {params} parameters ({a.layers} layers, {a.dim} wide, {a.heads} heads), "
          f"{size} bytes of text ({size - split} held out), context {a.context}, batch {a.batch}, "
          f"{a.steps} steps on {a.device}")
    print(f"unigram entropy of the training bytes: {entropy:.4f} nats")
    # nabla's generator: GPT construction draws every matrix twice, then each step draws a batch
    offset = 2 * sum(p.numel() for p in matrices)

    def validation():
        model.eval()
        windows_count = (size - split - 1) // a.context
        batches = max(1, min(8, windows_count // a.batch))
        batch = a.batch if windows_count >= a.batch else max(windows_count, 1)
        total = 0.0
        with torch.no_grad(), autocast:
            for k in range(batches):
                starts = split + (np.arange(k * batch, (k + 1) * batch) * a.context) % (size - split - a.context - 1)
                x, y = windows(data, starts, a.context, device)
                total += F.cross_entropy(model(x).float().view(-1, VOCAB), y.reshape(-1)).item()
        model.train()
        return total / batches

    start, tokens, val, last = time.perf_counter(), 0, float("nan"), 0.0
    for step in range(a.steps):
        lr = warmup_cosine(step, a.steps // 20 + 1, a.steps, a.lr, a.lr / 10)
        for group in opt.param_groups:
            group["lr"] = lr
        starts = (philox_keys(a.seed, offset, a.batch) % np.uint64(split - a.context - 1)).astype(np.int64)
        offset += a.batch
        x, y = windows(data, starts, a.context, device)
        with autocast:
            loss = F.cross_entropy(model(x).float().view(-1, VOCAB), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        tokens += a.batch * a.context
        if step % 10 == 0 or step + 1 == a.steps:
            last = loss.item()
        if (step + 1) % a.eval_every == 0 or step + 1 == a.steps:
            if cuda:
                torch.cuda.synchronize()
            seconds = time.perf_counter() - start
            val = validation()
            print(f"step {step + 1}: train loss {last:.4f}, val loss {val:.4f} (unigram entropy {entropy:.4f}), "
                  f"{tokens / seconds:.0f} tokens/s", flush=True)
            start += time.perf_counter() - start - seconds
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    rate = tokens / seconds
    mfu = f", MFU {100 * rate * flops_per_token / (a.peak_tflops * 1e12):.1f}% of {a.peak_tflops:.0f} TFLOP/s" if cuda else ""
    print(f"done: {seconds:.1f} s, {rate:.0f} tokens/s, {rate * flops_per_token / 1e12:.3g} model TFLOP/s{mfu}; "
          f"final val loss {val:.4f} vs unigram entropy {entropy:.4f} nats")


if __name__ == "__main__":
    main()
