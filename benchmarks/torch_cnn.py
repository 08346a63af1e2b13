"""The PyTorch twin of examples/train_cnn.c: the same model, initialization
scheme (Kaiming-normal conv and linear weights, zero biases), AdamW settings,
warmup + cosine schedule, label smoothing, batch size and data order (the
shuffles replay nabla's Philox streams, src/core/philox.h), for side-by-side
accuracy and speed.

    python3 benchmarks/torch_cnn.py [--device cpu|cuda] [--epochs N] [--batch N] [--lr RATE]
                                    [--seed S] [--data DIR] [--limit N] [--threads N]
"""
import argparse
import gzip
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

MEAN, STD = 0.2860, 0.3530
MASK = 0xFFFFFFFF


def read_idx(path):
    """An IDX file of bytes, read from path or, when that is missing, path + ".gz"."""
    if os.path.exists(path):
        with open(path, "rb") as f:
            data = f.read()
    else:
        with gzip.open(path + ".gz", "rb") as f:
            data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(directory, train):
    prefix = "train" if train else "t10k"
    images = read_idx(os.path.join(directory, f"{prefix}-images-idx3-ubyte")).astype(np.float32)
    labels = read_idx(os.path.join(directory, f"{prefix}-labels-idx1-ubyte")).astype(np.int64)
    images = (images / 255.0 - MEAN) / STD
    return torch.from_numpy(images.astype(np.float32)).unsqueeze(1), torch.from_numpy(labels)


def philox_keys(seed, offset, n):
    """The 64-bit keys nabla's randperm sorts: Philox4x32-10 of counters offset + i."""
    counter = np.arange(n, dtype=np.uint64) + np.uint64(offset)
    c0, c1 = counter & np.uint64(MASK), counter >> np.uint64(32)
    c2 = np.zeros(n, dtype=np.uint64)
    c3 = np.zeros(n, dtype=np.uint64)
    k0, k1 = seed & MASK, (seed >> 32) & MASK
    for _ in range(10):
        p0 = np.uint64(0xD2511F53) * c0
        p1 = np.uint64(0xCD9E8D57) * c2
        n0 = (p1 >> np.uint64(32)) ^ c1 ^ np.uint64(k0)
        n2 = (p0 >> np.uint64(32)) ^ c3 ^ np.uint64(k1)
        c1, c3 = p1 & np.uint64(MASK), p0 & np.uint64(MASK)
        c0, c2 = n0, n2
        k0, k1 = (k0 + 0x9E3779B9) & MASK, (k1 + 0xBB67AE85) & MASK
    return (c0 << np.uint64(32)) | c1


def permutation(seed, offset, n):
    return torch.from_numpy(np.argsort(philox_keys(seed, offset, n), kind="stable"))


def separable(cin, cout, stride):
    return nn.Sequential(nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), nn.BatchNorm2d(cin),
                         nn.ReLU(), nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


def build_model():
    features = nn.Sequential(nn.Conv2d(1, 32, 3, 1, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
                             separable(32, 64, 2), separable(64, 128, 2), separable(128, 128, 1),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten())
    model = nn.Sequential(features, nn.Dropout(0.2), nn.Linear(128, 10))
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return model


def warmup_cosine(step, warmup, total, max_lr, min_lr):
    if step < warmup:
        return max_lr * (step + 1) / warmup
    if step >= total or total <= warmup:
        return min_lr
    progress = (step - warmup) / (total - warmup)
    return min_lr + 0.5 * (max_lr - min_lr) * (1 + math.cos(math.pi * progress))


def accuracy(model, images, labels, device):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(labels), 1000):
            logits = model(images[i:i + 1000].to(device))
            correct += (logits.argmax(1).cpu() == labels[i:i + 1000]).sum().item()
    model.train()
    return 100.0 * correct / len(labels)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data", default=os.environ.get("NABLA_FASHION_MNIST_DIR",
                                                         "/usr/share/datasets/fashion-mnist"))
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    # as nabla: f32 convolutions and matmuls without TF32, and cuDNN's engines
    # timed once per shape
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    train_x, train_y = load(args.data, True)
    test_x, test_y = load(args.data, False)
    if 0 < args.limit < len(train_y):
        train_x, train_y = train_x[:args.limit], train_y[:args.limit]
    model = build_model().to(device)
    weights = sum(m.weight.numel() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=5e-4)
    n = len(train_y)
    steps_per_epoch = (n + args.batch - 1) // args.batch
    total = steps_per_epoch * args.epochs
    offset, step = weights, 0  # nabla's generator: the Kaiming draws come first
    for epoch in range(1, args.epochs + 1):
        order = permutation(args.seed, offset, n)
        offset += n + n * 128  # the shuffle, then one dropout draw per feature of every image
        start = time.perf_counter()
        for i in range(steps_per_epoch):
            rows = order[i * args.batch:(i + 1) * args.batch]
            x, y = train_x[rows].to(device, non_blocking=True), train_y[rows].to(device, non_blocking=True)
            for group in opt.param_groups:
                group["lr"] = warmup_cosine(step, total // 20 + 1, total, args.lr, args.lr / 100)
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
            loss.backward()
            opt.step()
            step += 1
            if i % 50 == 0 or i + 1 == steps_per_epoch:
                print(f"epoch {epoch}  step {i + 1}/{steps_per_epoch}  loss {loss.item():.4f}", flush=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        acc = accuracy(model, test_x, test_y, device)
        print(json.dumps({"impl": "torch", "epoch": epoch, "seconds": round(seconds, 2),
                          "images_per_s": round(n / seconds), "test_accuracy": round(acc, 2),
                          "device": args.device, "threads": args.threads}), flush=True)


if __name__ == "__main__":
    main()
