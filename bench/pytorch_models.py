#!/usr/bin/env python3
"""PyTorch side of bench/compare_pytorch.sh: training throughput of the models batchlab's
bench_engine times, built the same way, on Fashion-MNIST.

  mlp  784-256-128-10, ReLU (batchlab's mlp with hidden 256,128)
  cnn  the LeNet preset of plugins/models/cnn.c: conv 6@5x5 pad 2 -> relu -> maxpool 2 ->
       conv 16@5x5 -> relu -> maxpool 2 -> flatten 400 -> fc 120 -> relu -> fc 84 -> relu
       -> fc 10 (61,706 parameters, checked below)

For each batch size: a few warm-up steps, then `--epochs` of shuffled batches (a permutation
per epoch, the last partial batch kept) of forward + cross-entropy + backward + SGD (lr 0.01,
momentum 0.9), timed; no evaluation, as in bench_engine. Prints one line per batch size:

  pytorch MODEL BATCH SAMPLES_PER_S

Needs Debian's python3-torch (run with /usr/bin/python3); torch.set_num_threads(1) unless
--threads says otherwise (one thread is PyTorch's fastest setting on this 2-core machine).
Exit status 3 when torch is missing, 4 when the data is missing.
"""
import argparse
import gzip
import os
import struct
import sys
import time


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    _, _, ndim = struct.unpack(">HBB", data[:4])
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return data[4 + 4 * ndim:], dims


def find(dir_, stem):
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"),
                 stem.replace("-idx", ".idx") + ".gz"):
        p = os.path.join(dir_, name)
        if os.path.exists(p):
            return p
    return None


def build(torch, model):
    nn = torch.nn
    if model == "mlp":
        net = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(),
                            nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))
    else:
        net = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                            nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                            nn.Linear(84, 10))
        n = sum(p.numel() for p in net.parameters())
        assert n == 61706, f"LeNet mirror has {n} parameters, batchlab's preset 61,706"
    return net


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", choices=["mlp", "cnn"], required=True)
    ap.add_argument("--batches", default="16,32,128,512",
                    help="comma-separated batch sizes (default 16,32,128,512)")
    ap.add_argument("--epochs", type=float, default=0.25,
                    help="epochs timed per batch size (default 0.25)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--dir", default="/usr/share/datasets/fashion-mnist")
    args = ap.parse_args()
    try:
        batches = [int(b) for b in args.batches.split(",")]
        if min(batches) < 1:
            raise ValueError
    except ValueError:
        ap.error(f"--batches: expected positive whole numbers, got '{args.batches}'")
    try:
        import torch
    except ImportError as e:
        print(f"pytorch_models: cannot import torch ({e}); install Debian's python3-torch and "
              "run with /usr/bin/python3", file=sys.stderr)
        return 3
    images = find(args.dir, "train-images-idx3-ubyte")
    labels = find(args.dir, "train-labels-idx1-ubyte")
    if not images or not labels:
        print(f"pytorch_models: no train-images/train-labels IDX files in {args.dir} "
              "(apt-get install dataset-fashion-mnist)", file=sys.stderr)
        return 4
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    pix, dims = read_idx(images)
    lab, _ = read_idx(labels)
    x = torch.frombuffer(bytearray(pix), dtype=torch.uint8).view(-1, 1, dims[1], dims[2])
    x = (x.float() / 255 - 0.2860) / 0.3530
    y = torch.frombuffer(bytearray(lab), dtype=torch.uint8).long()
    n = x.shape[0]
    loss_fn = torch.nn.CrossEntropyLoss()
    for batch in batches:
        net = build(torch, args.model)
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)

        def step(idx):
            opt.zero_grad()
            loss_fn(net(x[idx]), y[idx]).backward()
            opt.step()

        for _ in range(5):  # warm-up: allocations, first-call costs
            step(torch.randint(0, n, (batch,)))
        total = max(batch, int(args.epochs * n))
        done = 0
        t0 = time.perf_counter()
        while done < total:
            perm = torch.randperm(n)
            for i in range(0, n, batch):
                if done >= total:
                    break
                idx = perm[i:i + batch]
                step(idx)
                done += idx.shape[0]
        rate = done / (time.perf_counter() - t0)
        print(f"pytorch {args.model} {batch} {rate:.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
