#!/usr/bin/python3
"""A PyTorch MNIST network trained by l2l's shipped learned optimizer.

The setting of `l2l eval --task mnist` (tools/family.c, src/tasks/mlp.c): a 784-20-10
sigmoid MLP, weights and biases ~ N(0, 0.01²), softmax cross-entropy on a fresh minibatch
of 128 digits drawn with replacement for every step, from the network's own pool of
digits (by default as many as the test split holds, drawn from the test split), 100 steps.
The loss at step t is the minibatch loss at theta_t, as l2l eval reports it. Each of
--runs networks is one torch.nn.Sequential trained with l2l.torch.LearnedOptimizer.

    PYTHONPATH=python /usr/bin/python3 examples/python/mnist_torch.py --runs 100 --cli build/l2l

With --cli, it also runs `l2l eval` on the same setting and compares the final losses
(the networks and minibatches are sampled differently, so the means are compared with
their standard errors).
"""
import argparse
import csv
import gzip
import io
import math
import os
import struct
import subprocess
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
import l2l.torch  # noqa: E402


def read_idx(path):
    """An IDX file (gzipped or not) as a uint8 array of its shape."""
    for p in (path, path + ".gz"):
        if os.path.exists(p):
            with (gzip.open if p.endswith(".gz") else open)(p, "rb") as f:
                data = f.read()
            break
    else:
        raise FileNotFoundError(f"{path}[.gz] not found; run `make data` (scripts/fetch_mnist.sh)")
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"{path}: not an IDX file of unsigned bytes")
    shape = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_split(data_dir, split):
    images = read_idx(os.path.join(data_dir, f"{split}-images-idx3-ubyte"))
    labels = read_idx(os.path.join(data_dir, f"{split}-labels-idx1-ubyte"))
    x = torch.from_numpy(images.reshape(len(images), -1).astype(np.float32) / 255.0)
    return x, torch.from_numpy(labels.astype(np.int64))


def train_network(x, y, optimizer, args, run):
    """One network from its own seed: its pool, its initial weights, its minibatches.
    Returns the losses at steps 0..steps."""
    g = torch.Generator().manual_seed(args.seed * 1_000_003 + run)
    model = torch.nn.Sequential(torch.nn.Linear(784, args.hidden), torch.nn.Sigmoid(),
                                torch.nn.Linear(args.hidden, 10))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.01)
    pool = torch.randperm(len(x), generator=g)[:args.pool or len(x)]
    opt = l2l.torch.LearnedOptimizer(model.parameters(), optimizer,
                                     lr=args.lr if optimizer in l2l.KINDS else None)
    losses = []
    for t in range(args.steps + 1):
        idx = pool[torch.randint(len(pool), (args.batch,), generator=g)]
        loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
        losses.append(loss.item())
        if t < args.steps:
            opt.zero_grad()
            loss.backward()
            opt.step()
    return losses


def cli_eval(cli, args):
    """Mean and std of the loss at every step from `l2l eval` (its CSV: step,mean,std)."""
    cmd = [cli, "eval", "--task", "mnist", "--optimizer", args.optimizer, "--runs", str(args.runs),
           "--steps", str(args.steps), "--hidden", str(args.hidden), "--data", args.data]
    if args.lr:
        cmd += ["--lr", str(args.lr)]
    if args.pool:
        cmd += ["--pool", str(args.pool)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rows = [r for r in csv.reader(io.StringIO(out)) if r and r[0].isdigit()]
    return np.array([[float(r[1]), float(r[2])] for r in rows])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--optimizer", default="models/mnist.safetensors",
                    help="checkpoint, or a baseline kind with --lr")
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--hidden", type=int, default=20)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--pool", type=int, default=0, help="digits per network (0: the whole test split)")
    ap.add_argument("--data", default="data/mnist")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--csv", help="write step,mean,std of the PyTorch runs here")
    ap.add_argument("--cli", help="the l2l tool: also run `l2l eval` and compare")
    args = ap.parse_args()
    torch.set_num_threads(1)

    x, y = load_split(args.data, "t10k")
    t0 = time.time()
    curves = np.array([train_network(x, y, args.optimizer, args, r) for r in range(args.runs)])
    secs = time.time() - t0
    mean, std = curves.mean(0), curves.std(0, ddof=1)
    se = std / math.sqrt(args.runs)
    if args.csv:
        with open(args.csv, "w") as f:
            f.write("step,mean,std\n")
            for t in range(args.steps + 1):
                f.write(f"{t},{mean[t]:.9g},{std[t]:.9g}\n")
    S = args.steps
    print(f"PyTorch + l2l.torch ({args.optimizer}), {args.runs} networks, {secs:.1f} s")
    print(f"  loss at step {S}: {mean[S]:.4f} ± {se[S]:.4f} (standard error); "
          f"mean over steps 1..{S}: {curves[:, 1:].mean():.4f} ± "
          f"{curves[:, 1:].mean(1).std(ddof=1) / math.sqrt(args.runs):.4f}")
    if args.cli:
        ref = cli_eval(args.cli, args)
        ref_se = ref[S, 1] / math.sqrt(args.runs)
        diff, both = mean[S] - ref[S, 0], math.hypot(se[S], ref_se)
        print(f"l2l eval, {args.runs} networks")
        print(f"  loss at step {S}: {ref[S, 0]:.4f} ± {ref_se:.4f}; mean over steps 1..{S}: "
              f"{ref[1:, 0].mean():.4f}")
        print(f"  difference at step {S}: {diff:+.4f} ± {both:.4f} ({diff / both:+.2f} standard errors)")


if __name__ == "__main__":
    main()
