#!/usr/bin/env python3
"""Side-by-side reference (not a test): the same run as batchlab's quick start, in PyTorch.

MLP 784-256-128-10, SGD lr 0.05 momentum 0.9, batch 128, Fashion-MNIST scaled to [0, 1],
3 epochs by default. Prints the test accuracy and the time. Needs Debian's python3-torch;
run with /usr/bin/python3. torch.set_num_threads(1) is its fastest setting on 2 cores.

    /usr/bin/time -v /usr/bin/python3 bench/pytorch_mlp.py --epochs 1

--steps times the training step alone instead (random data, the model of --widths, SGD with
momentum 0.9, cross-entropy) at each of --batches and prints samples/s of the fastest step:
the figure bench_core --sweep prints for batchlab, for a ratio measured in the same sitting.

    /usr/bin/python3 bench/pytorch_mlp.py --steps --widths 784,1024,1024,10 --batches 16,32
"""
import argparse
import os
import time

import numpy as np
import torch

from pytorch_models import build, read_idx  # the one PyTorch mirror of the models

DIR = "/usr/share/datasets/fashion-mnist"


def load(stem):
    data, dims = read_idx(os.path.join(DIR, stem + ".gz"))
    return np.frombuffer(data, dtype=np.uint8).reshape(dims)


def step_sweep(widths, batches, seconds):
    torch.set_num_threads(1)
    torch.manual_seed(1)
    layers = []
    for i in range(len(widths) - 1):
        layers.append(torch.nn.Linear(widths[i], widths[i + 1]))
        if i < len(widths) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    print(f"pytorch {torch.__version__}, 1 thread, MLP {'-'.join(map(str, widths))}: "
          f"training-step samples/s of the fastest step, {seconds:.2f} s per batch")
    print(f"{'batch':>6} {'samples/s':>11} {'step us':>10}")
    for b in batches:
        x = torch.randn(b, widths[0])
        y = torch.randint(0, widths[-1], (b,))
        best = float("inf")
        t_end = time.perf_counter() + seconds
        i = 0
        while i < 5 or time.perf_counter() < t_end:
            t0 = time.perf_counter()
            opt.zero_grad()
            loss_fn(model(x), y).backward()
            opt.step()
            t = time.perf_counter() - t0
            if i >= 2:  # warm-up steps are not counted
                best = min(best, t)
            i += 1
        print(f"{b:>6} {b / best:>11.0f} {1e6 * best:>10.1f}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--steps", action="store_true",
                    help="time the training step alone at each of --batches")
    ap.add_argument("--widths", default="784,256,128,10")
    ap.add_argument("--batches", default="1,8,16,17,24,32,48,64,128,512,2048")
    ap.add_argument("--seconds", type=float, default=0.5, help="per batch, with --steps")
    args = ap.parse_args()
    if args.steps:
        step_sweep([int(w) for w in args.widths.split(",")],
                   [int(b) for b in args.batches.split(",")], args.seconds)
        return
    t0 = time.time()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    x = torch.tensor(load("train-images-idx3-ubyte"), dtype=torch.float32).view(-1, 784) / 255
    y = torch.tensor(load("train-labels-idx1-ubyte"), dtype=torch.long)
    xt = torch.tensor(load("t10k-images-idx3-ubyte"), dtype=torch.float32).view(-1, 784) / 255
    yt = torch.tensor(load("t10k-labels-idx1-ubyte"), dtype=torch.long)
    model = build(torch, "mlp")
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    t_train = time.time()
    for _ in range(args.epochs):
        perm = torch.randperm(x.shape[0])
        for i in range(0, x.shape[0], 128):
            idx = perm[i:i + 128]
            opt.zero_grad()
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
    train_s = time.time() - t_train
    with torch.no_grad():
        acc = (model(xt).argmax(1) == yt).float().mean().item()
    print(f"pytorch: epochs {args.epochs} test accuracy {acc:.4f} train {train_s:.2f}s "
          f"total {time.time() - t0:.2f}s")


if __name__ == "__main__":
    main()
