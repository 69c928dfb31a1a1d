#!/usr/bin/env python3
"""Side-by-side reference (not a test): bench_conv's "LeNet train step" in PyTorch.

The `cnn` model's LeNet preset (plugins/models/cnn.c) on 1x28x28 inputs with 10 classes:
conv 6@5x5 pad 2 -> relu -> maxpool 2 -> conv 16@5x5 -> relu -> maxpool 2 -> flatten 400
-> fc 120 -> relu -> fc 84 -> relu -> fc 10, cross-entropy, SGD lr 0.01 momentum 0.9; one
batch of uniform [0, 1) inputs gathered once (as bench_conv does). Prints samples/s per batch
size, the median of --rounds runs of --seconds each, and the GFLOP/s with bench_conv's count
(2,263,920 FLOPs per sample). Needs Debian's python3-torch; run with /usr/bin/python3.

    /usr/bin/python3 bench/pytorch_lenet.py [--threads 1] [--batches 32,128]
"""
import argparse
import statistics
import time

import torch

from pytorch_models import build  # the one PyTorch mirror of the models

FLOPS_PER_SAMPLE = 4 * 6 * 25 * 784 + 6 * 16 * 150 * 100 + 6 * (400 * 120 + 120 * 84 + 84 * 10)


def rate(batch, seconds):
    torch.manual_seed(1)
    model = build(torch, "cnn")
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    x = torch.rand(batch, 1, 28, 28)
    y = torch.arange(batch) % 10

    def step():
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()

    for _ in range(2):
        step()
    iters, t0 = 0, time.perf_counter()
    while True:
        step()
        iters += 1
        t = time.perf_counter() - t0
        if t >= seconds and iters >= 3:
            return batch * iters / t


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    ap.add_argument("--batches", default="32,128", help="comma-separated batch sizes")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=0.3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    batches = [int(b) for b in args.batches.split(",")]
    runs = {b: [] for b in batches}
    for _ in range(args.rounds):
        for b in batches:
            runs[b].append(rate(b, args.seconds))
    print(f"pytorch {torch.__version__} LeNet train step, threads {args.threads}, "
          f"medians of {args.rounds} rounds")
    for b in batches:
        r = statistics.median(runs[b])
        print(f"batch {b:5d}  {r:10.0f} samples/s  {r * FLOPS_PER_SAMPLE * 1e-9:7.1f} GFLOP/s")


if __name__ == "__main__":
    main()
