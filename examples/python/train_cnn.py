#!/usr/bin/env python3
"""Trains the C example's CNN (examples/train_cnn.c) on Fashion-MNIST from Python, the way a
PyTorch user writes it: the same model, optimizer, schedule, data order and seed, so that it
reaches the C example's test accuracy. A tqdm bar shows the loss and the throughput; the loss
curve goes to a PNG (matplotlib).

    examples/python/train_cnn.py [--device cpu|cuda] [--epochs N] [--batch N] [--lr RATE]
                                 [--seed S] [--limit N] [--plot PATH]
"""
import argparse
import time

import nabla as nb
import nabla.nn as nn
import nabla.nn.functional as F
from nabla.utils.data import DataLoader


def build_model(device, generator):
    """Conv-BN-ReLU, three depthwise-separable blocks, global pooling, dropout, a linear head."""
    block = nn.Sequential(
        nn.Conv2d(1, 32, 3, 1, 1, bias=False, device=device, generator=generator),
        nn.BatchNorm2d(32, device=device),
        nn.ReLU(),
        nn.DepthwiseSeparableConv2d(32, 64, 3, 2, device=device, generator=generator),
        nn.DepthwiseSeparableConv2d(64, 128, 3, 2, device=device, generator=generator),
        nn.DepthwiseSeparableConv2d(128, 128, 3, 1, device=device, generator=generator),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )
    return nn.Sequential(block, nn.Dropout(0.2, generator=generator),
                         nn.Linear(128, 10, device=device, generator=generator))


@nb.no_grad()
def test_accuracy(model, data, device):
    model.eval()
    correct = total = 0
    for x, y in DataLoader(data, batch_size=1000):
        logits = model(x.to(device))
        correct += (logits.argmax(1) == y.to(device)).sum().item()
        total += y.shape[0]
    model.train()
    return 100.0 * correct / total


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if nb.cuda.is_available() else "cpu")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-2, help="AdamW's peak learning rate")
    parser.add_argument("--seed", type=int, default=1, help="seeds initialization, shuffling and dropout")
    parser.add_argument("--data", default=None, help="the Fashion-MNIST directory")
    parser.add_argument("--limit", type=int, default=0, help="train on the first N images only")
    parser.add_argument("--plot", default="train_cnn_loss.png", help="where to save the loss curve")
    args = parser.parse_args()

    from tqdm import tqdm

    train = nb.datasets.FashionMNIST(args.data, train=True)
    test = nb.datasets.FashionMNIST(args.data, train=False)
    if args.limit:
        train = nb.utils.data.TensorDataset(train.data[:args.limit], train.targets[:args.limit])
    generator = nb.Generator(args.seed)
    model = build_model(args.device, generator)
    optimizer = nb.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=5e-4)
    loader = DataLoader(train, batch_size=args.batch, shuffle=True, generator=generator)
    total_steps = len(loader) * args.epochs
    schedule = nb.optim.lr_scheduler.WarmupCosineLR(optimizer, total_steps // 20 + 1, total_steps,
                                                     min_lr=args.lr / 100)
    count = sum(p.numel() for p in model.parameters())
    print(f"train_cnn.py: {count} parameters, {len(train)} training images, batch {args.batch}, "
          f"{args.epochs} epochs on {args.device}")
    losses = []
    for epoch in range(1, args.epochs + 1):
        start, images = time.perf_counter(), 0
        bar = tqdm(loader, desc=f"epoch {epoch}", unit="batch", mininterval=1.0)
        for step, (x, y) in enumerate(bar):
            x, y = x.to(args.device), y.to(args.device)
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
            loss.backward()
            optimizer.step()
            schedule.step()
            images += x.shape[0]
            losses.append(loss.detach())
            if step % 50 == 0:
                bar.set_postfix(loss=f"{loss.item():.4f}",
                                images_per_s=f"{images / (time.perf_counter() - start):.0f}")
        seconds = time.perf_counter() - start
        accuracy = test_accuracy(model, test, args.device)
        print(f"epoch {epoch}: {seconds:.1f} s, {images / seconds:.0f} images/s, test accuracy {accuracy:.2f}%")
    if args.plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        values = [l.item() for l in losses]
        plt.figure(figsize=(7, 4))
        plt.plot(values, lw=0.6, label="loss per step")
        window = 50
        smooth = [sum(values[max(0, i - window):i + 1]) / len(values[max(0, i - window):i + 1])
                  for i in range(len(values))]
        plt.plot(smooth, lw=1.5, label=f"mean of the last {window}")
        plt.xlabel("step")
        plt.ylabel("cross-entropy (label smoothing 0.1)")
        plt.title("train_cnn.py on Fashion-MNIST")
        plt.legend()
        plt.tight_layout()
        plt.savefig(args.plot, dpi=120)
        print(f"train_cnn.py: loss curve in {args.plot}")


if __name__ == "__main__":
    main()
