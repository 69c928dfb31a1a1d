#!/usr/bin/env python3
"""Side-by-side reference (not a test): the same run as batchlab's quick start, in PyTorch.

MLP 784-256-128-10, SGD lr 0.05 momentum 0.9, batch 128, Fashion-MNIST scaled to [0, 1],
3 epochs by default. Prints the test accuracy and the time. Needs Debian's python3-torch;
run with /usr/bin/python3. torch.set_num_threads(1) is its fastest setting on 2 cores.

    /usr/bin/time -v /usr/bin/python3 bench/pytorch_mlp.py --epochs 1
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
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
