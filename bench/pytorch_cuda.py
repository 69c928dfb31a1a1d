#!/usr/bin/env python3
"""PyTorch eager reference for bench_cuda (issue 11): the same MLP 784-256-128-10, SGD lr 0.05
momentum 0.9, epoch time at batch 32 ... 8192 with the training set resident on the GPU,
shuffled once and trained on in contiguous slices; the loss is read back every step
(loss.item(), as batchlab reads its loss every step). The median of --epochs timed epochs after
one warm-up epoch. FP32 (TF32 off unless --tf32). Not a test.

    /usr/bin/python3 bench/pytorch_cuda.py [--device cuda] [--epochs 3] [--max-batch 8192]
        [--data DIR] [--tf32] [--no-sync]

Exit status 77 when the device is not available (the reason on stderr).
"""
import argparse
import os
import sys
import time

import numpy as np
import torch

from pytorch_models import read_idx  # one IDX reader for the PyTorch sides

SAMPLES, FEATURES, CLASSES = 60000, 784, 10


def idx_array(path):
    data, dims = read_idx(path)
    return np.frombuffer(data, dtype=np.uint8).reshape(dims)


def load(directory, gen):
    for suffix in (".gz", ""):
        xi = os.path.join(directory, "train-images-idx3-ubyte" + suffix)
        yi = os.path.join(directory, "train-labels-idx1-ubyte" + suffix)
        if os.path.exists(xi) and os.path.exists(yi):
            x = torch.tensor(idx_array(xi)[:SAMPLES], dtype=torch.float32).view(-1, FEATURES) / 255
            y = torch.tensor(idx_array(yi)[:SAMPLES], dtype=torch.long)
            print(f"data: Fashion-MNIST training set from {directory}")
            return x, y
    print(f"data: synthetic ({directory} not usable)")
    x = torch.rand(SAMPLES, FEATURES, generator=gen)
    y = torch.randint(0, CLASSES, (SAMPLES,), generator=gen)
    return x, y


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--max-batch", type=int, default=8192)
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--tf32", action="store_true")
    ap.add_argument("--no-sync", action="store_true", help="do not read the loss every step")
    args = ap.parse_args()
    if args.epochs < 1 or args.max_batch < 32:
        ap.error("--epochs must be >= 1 and --max-batch >= 32")
    dev = torch.device(args.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        print("pytorch_cuda: SKIP: torch.cuda is not available", file=sys.stderr)
        return 77
    if dev.type == "cpu":
        torch.set_num_threads(1)
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    torch.backends.cudnn.allow_tf32 = args.tf32
    gen = torch.Generator().manual_seed(1)
    x, y = load(args.data, gen)
    perm = torch.randperm(SAMPLES, generator=gen)
    x, y = x[perm].contiguous().to(dev), y[perm].contiguous().to(dev)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    print(f"device: {name}, torch {torch.__version__}; MLP 784-256-128-10, SGD lr 0.05 "
          f"momentum 0.9{', TF32' if args.tf32 else ''}")
    print(f"{'batch':>8} {'steps':>8} {'epoch_s':>12} {'samples/s':>12} {'loss':>10}")

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    batch = 32
    while batch <= args.max_batch:
        torch.manual_seed(1)
        model = torch.nn.Sequential(
            torch.nn.Linear(FEATURES, 256), torch.nn.ReLU(),
            torch.nn.Linear(256, 128), torch.nn.ReLU(),
            torch.nn.Linear(128, CLASSES)).to(dev)
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        loss_fn = torch.nn.CrossEntropyLoss()
        steps = SAMPLES // batch
        last = float("nan")

        def epoch():
            nonlocal last
            for s in range(steps):
                xb = x[s * batch:(s + 1) * batch]
                yb = y[s * batch:(s + 1) * batch]
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model(xb), yb)
                loss.backward()
                opt.step()
                if not args.no_sync:
                    last = loss.item()
            if args.no_sync:
                last = loss.item()
            sync()

        epoch()  # warm-up
        times = []
        for _ in range(args.epochs):
            t0 = time.perf_counter()
            epoch()
            times.append(time.perf_counter() - t0)
        med = sorted(times)[len(times) // 2]
        print(f"{batch:>8} {steps:>8} {med:>12.4f} {steps * batch / med:>12.0f} {last:>10.4f}",
              flush=True)
        batch *= 2
    if dev.type == "cuda":
        print(f"peak device memory: {torch.cuda.max_memory_allocated(dev) / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
