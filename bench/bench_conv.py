#!/usr/bin/python3
"""The conv-net training step in PyTorch: the peer of `l2l-bench --one conv`.

The network is l2l's conv task (src/tasks/conv.c, include/l2l.h l2l_conv_config) written the
way a PyTorch user would write it:
  3 x [Conv2d(5x5, 16 channels, padding 2 = SAME, bias) -> BatchNorm (batch statistics,
       eps 1e-3, learned shift only: the scale is frozen at 1) -> ReLU -> MaxPool2d(2,
       ceil_mode=True)]
  -> flatten -> Linear(., 32) -> BatchNorm1d (same) -> ReLU -> Linear(32, classes)
  -> cross_entropy (mean over the minibatch).
One step is what l2l's loss_grad does: draw 128 examples with replacement, scale the bytes
to [0, 1], forward, backward (parameter gradients; none for the input). float32 throughout.

  /usr/bin/python3 bench/bench_conv.py --threads 1 --data data/mnist
  /usr/bin/python3 bench/bench_conv.py --threads 1 --l2l build/l2l-bench   # both, and the ratio

prints one JSON line: the median seconds per step (after warm-up steps), the spread, and
the 1-minute load average before and after (a busy machine makes the numbers meaningless).
With --l2l BENCH, first runs `BENCH --conv --threads K --repeat R --data DIR` (l2l's step,
its convolutions' FLOP rate and the sgemm beside it), prints its table and JSON line, then
PyTorch's line and one line with the ratio of the medians. --threads K sets
torch.set_num_threads(K) and OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, MKL_NUM_THREADS before
torch is loaded (and for the l2l run). Only torch, numpy and the standard library.
"""
import argparse
import json
import os
import statistics
import struct
import subprocess
import sys
import time


def load_idx_images(path):
    with open(path, "rb") as f:
        raw = f.read()
    magic, n, rows, cols = struct.unpack(">IIII", raw[:16])
    if magic != 0x803 or len(raw) != 16 + n * rows * cols:
        sys.exit(f"bench_conv.py: {path} is not an IDX image file")
    return raw[16:], n, rows, cols


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data", default="data/mnist", help="directory with train-images-idx3-ubyte")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=30, help="timed steps (median reported)")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--l2l", metavar="BENCH", help="also run BENCH --conv (build/l2l-bench) first")
    args = ap.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    l2l = None
    if args.l2l:
        run = subprocess.run([args.l2l, "--conv", "--threads", str(args.threads), "--repeat",
                              str(min(args.repeat, 63)), "--data", args.data],
                             stdout=subprocess.PIPE, text=True)
        if run.returncode != 0:
            sys.exit(f"bench_conv.py: {args.l2l} --conv failed (exit {run.returncode})")
        print(run.stdout, end="")
        l2l = json.loads(run.stdout.strip().splitlines()[-1])
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)

    raw, n, rows, cols = load_idx_images(os.path.join(args.data, "train-images-idx3-ubyte"))
    images = torch.from_numpy(np.frombuffer(raw, dtype=np.uint8).reshape(n, 1, rows, cols).copy())
    labels = torch.randint(0, 10, (n,))

    def bn(c, dims):
        m = (nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d)(c, eps=1e-3, track_running_stats=False)
        m.weight.requires_grad_(False)  # no scale: a learned shift only
        return m

    side = rows
    layers = []
    cin = 1
    for _ in range(3):
        layers += [nn.Conv2d(cin, 16, 5, padding=2), bn(16, 2), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True)]
        cin = 16
        side = (side + 1) // 2
    flat = 16 * side * side
    layers += [nn.Flatten(), nn.Linear(flat, 32), bn(32, 1), nn.ReLU(), nn.Linear(32, 10)]
    net = nn.Sequential(*layers)
    for p in net.parameters():
        if p.requires_grad:
            nn.init.normal_(p, 0.0, 0.01)
    n_params = sum(p.numel() for p in net.parameters() if p.requires_grad)

    gen = torch.Generator().manual_seed(2)

    def step():
        idx = torch.randint(0, n, (args.batch,), generator=gen)
        x = images[idx].float().div_(255.0)
        y = labels[idx]
        for p in net.parameters():
            p.grad = None
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        return loss.item()

    load0 = os.getloadavg()[0]
    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    load1 = os.getloadavg()[0]
    q = statistics.quantiles(times, n=4) if len(times) >= 2 else [times[0]] * 3
    print(json.dumps({
        "task": "conv-step", "impl": "pytorch", "threads": args.threads, "batch": args.batch,
        "input": [1, rows, cols], "params": n_params,
        "seconds_median": statistics.median(times), "seconds_q1": q[0], "seconds_q3": q[2],
        "seconds_min": min(times), "repeat": args.repeat,
        "torch": torch.__version__, "mkldnn": torch.backends.mkldnn.is_available(),
        "load_before": load0, "load_after": load1,
    }))
    if l2l:
        t = statistics.median(times)
        print(f"conv-net step, batch {args.batch}, {args.threads} thread(s): l2l {1e3 * l2l['seconds_median']:.2f} ms, "
              f"PyTorch {1e3 * t:.2f} ms: l2l {t / l2l['seconds_median']:.2f}x faster "
              f"(fastest runs: {1e3 * l2l['seconds_min']:.2f} / {1e3 * min(times):.2f} ms, "
              f"{min(times) / l2l['seconds_min']:.2f}x); l2l's convolutions {l2l['conv_gflops']:.0f} GFLOP/s, "
              f"sgemm {l2l['sgemm_im2col_gflops']:.0f} (im2col shapes) and {l2l['sgemm_square_gflops']:.0f} "
              f"(square) GFLOP/s")


if __name__ == "__main__":
    main()
