#!/usr/bin/python3
"""Meta-train a learned optimizer on a task family defined in PyTorch, then compare it with
torch.optim.Adam, its learning rate tuned, on fresh problems of the family.

Families (--family):
  mlp        regression with small MLPs: each problem is B = 8 student networks side by
             side, 4 -> 16 tanh -> 1, weights ~ N(0, 0.1²), each fitting its own random
             teacher 4 -> 8 tanh -> 1 (weights ~ N(0, 1/fan_in)) by mean squared error on a
             fresh minibatch of 32 inputs x ~ N(0, I) per step. N = 8 x 97 = 776.
  quadratic  f(theta) = ||W theta - y||², W 10x10, W, y, theta0 ~ N(0, 1) (the paper's
             family, written in torch), B = 128 functions side by side. N = 1,280.
Within a problem each network (function) is optimized on its own gradient (grad_scale 1/B);
the loss is their mean. Everything is drawn from torch generators seeded by l2l's rng, so
the same --seed gives the same optimizer and the same figures.

The steps:
  1. l2l.meta_train on the family (the paper's truncated backpropagation), keeping the phi
     with the best validation score; saved as a normal checkpoint (--out) that
     `l2l info` and C programs read;
  2. Adam's learning rate: the grid of `l2l tune` (10^(k/2), 1e-5 .. 31.6), the best mean
     final loss on --tune-runs validation problems;
  3. both on --runs fresh test problems, the same problems and minibatches for both; the
     final loss and the mean loss over the steps, with paired standard errors.

    PYTHONPATH=python /usr/bin/python3 examples/python/meta_train_torch.py --family mlp
"""
import argparse
import math
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
import l2l  # noqa: E402

STREAM_VALID, STREAM_TEST = 2, 3


class MLPRegression:
    """B student MLPs (D -> H tanh -> 1) fitting B random teachers (D -> HT tanh -> 1)."""

    def __init__(self, B=8, D=4, H=16, HT=8, batch=32, init_std=0.1):
        self.B, self.D, self.H, self.HT, self.batch, self.init_std = B, D, H, HT, batch, init_std
        self.per = H * D + H + H + 1  # W1 (H, D), b1 (H), W2 (1, H), b2 (1)
        self.n = B * self.per
        self.grad_scale = 1.0 / B
        self.name = f"torch-mlp-regression-{B}x{D}-{H}-1"

    def sample(self, rng):
        g = torch.Generator().manual_seed(rng.seed())
        B, D, HT = self.B, self.D, self.HT
        self.T1 = torch.randn(B, HT, D, generator=g) / math.sqrt(D)
        self.c1 = torch.randn(B, HT, generator=g) / math.sqrt(D)
        self.T2 = torch.randn(B, 1, HT, generator=g) / math.sqrt(HT)
        return torch.randn(self.n, generator=g) * self.init_std

    def loss_grad(self, theta, rng):
        g = torch.Generator().manual_seed(rng.seed())  # this step's minibatch
        B, D, H = self.B, self.D, self.H
        x = torch.randn(B, self.batch, D, generator=g)
        y = torch.bmm(torch.tanh(torch.bmm(x, self.T1.transpose(1, 2)) + self.c1.unsqueeze(1)),
                      self.T2.transpose(1, 2))
        th = torch.from_numpy(theta).view(B, self.per).clone().requires_grad_(True)
        o = 0
        W1 = th[:, o:o + H * D].view(B, H, D); o += H * D
        b1 = th[:, o:o + H]; o += H
        W2 = th[:, o:o + H].view(B, 1, H); o += H
        b2 = th[:, o:o + 1]
        h = torch.tanh(torch.bmm(x, W1.transpose(1, 2)) + b1.unsqueeze(1))
        out = torch.bmm(h, W2.transpose(1, 2)) + b2.unsqueeze(1)
        per_net = ((out - y) ** 2).mean((1, 2))  # (B)
        (grad,) = torch.autograd.grad(per_net.sum(), th)  # each network's own gradient
        return per_net.mean().item(), grad.reshape(-1).numpy()


class Quadratics:
    """B functions ||W theta - y||², W (D, D), W, y, theta0 ~ N(0, 1)."""

    def __init__(self, B=128, D=10):
        self.B, self.D = B, D
        self.n = B * D
        self.grad_scale = 1.0 / B
        self.name = f"torch-quadratic-{B}x{D}"

    def sample(self, rng):
        g = torch.Generator().manual_seed(rng.seed())
        self.W = torch.randn(self.B, self.D, self.D, generator=g)
        self.y = torch.randn(self.B, self.D, generator=g)
        return torch.randn(self.n, generator=g)

    def loss_grad(self, theta, rng=None):
        th = torch.from_numpy(theta).view(self.B, self.D).clone().requires_grad_(True)
        r = torch.bmm(self.W, th.unsqueeze(2)).squeeze(2) - self.y
        per = (r * r).sum(1)
        (grad,) = torch.autograd.grad(per.sum(), th)
        return per.mean().item(), grad.reshape(-1).numpy()


def run(task, make_step, steps, seed, stream, r):
    """Losses at steps 0..steps of one problem; problem r of a stream and its minibatches
    come from their own rng, so every optimizer sees the same ones. make_step(theta)
    returns step(grad) that updates theta (float32 NumPy) in place."""
    rng = l2l.Rng(seed, (stream << 32) | r)
    theta = np.ascontiguousarray(task.sample(rng).numpy(), dtype=np.float32)
    step = make_step(theta)
    losses = []
    for t in range(steps + 1):
        f, g = task.loss_grad(theta, rng)
        if not math.isfinite(f):
            return losses + [math.inf] * (steps + 1 - t)
        losses.append(f)
        if t < steps:
            step(np.ascontiguousarray(g, dtype=np.float32))
    return losses


def learned(net, n):
    def make(theta):
        opt = l2l.Optimizer(net, n)
        return lambda g: opt.step(g, theta)
    return make


def torch_adam(lr):
    def make(theta):
        p = torch.from_numpy(theta)  # shares theta's memory: Adam updates it in place
        opt = torch.optim.Adam([p], lr=lr)

        def step(g):
            p.grad = torch.from_numpy(g)
            opt.step()
        return step
    return make


def curves(task, make_step, steps, seed, stream, runs):
    return np.array([run(task, make_step, steps, seed, stream, r) for r in range(runs)])


def paired(a, b):
    """mean(a - b) and its standard error."""
    d = a - b
    return d.mean(), d.std(ddof=1) / math.sqrt(len(d))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--family", choices=["mlp", "quadratic"], default="mlp")
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--unroll", type=int, default=20)
    ap.add_argument("--eval-every", type=int, default=25)
    ap.add_argument("--scale", type=float, default=None, help="LSTM output scale (mlp 0.1, quadratic 1)")
    ap.add_argument("--preproc", choices=["none", "logsign", "logsign-rms"], default=None,
                    help="gradient preprocessing (mlp logsign, quadratic none: the paper's settings)")
    ap.add_argument("--objective", choices=["sum", "log"], default="sum",
                    help="meta-loss: sum_t f(theta_t) (the paper) or sum_t log f(theta_t)")
    ap.add_argument("--imitate", metavar="KIND:LR", default=None,
                    help="first a stage of --imitate-epochs imitating a hand-written optimizer "
                         "(e.g. adam:0.1), then meta-training from there")
    ap.add_argument("--imitate-epochs", type=int, default=100)
    ap.add_argument("--runs", type=int, default=200, help="test problems")
    ap.add_argument("--tune-runs", type=int, default=50, help="validation problems for Adam's lr")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default="out/python/meta_torch.safetensors")
    args = ap.parse_args()
    torch.set_num_threads(1)

    task = MLPRegression() if args.family == "mlp" else Quadratics()
    scale = args.scale if args.scale is not None else (0.1 if args.family == "mlp" else 1.0)
    preproc = args.preproc or ("logsign" if args.family == "mlp" else "none")
    net = l2l.LSTM(layers=2, hidden=20, preproc=preproc, p=10, scale=scale, seed=args.seed)
    print(f"{task.name}: N = {task.n}; LSTM 2x20, {preproc}, scale {scale} ({net.n_params} weights), {args.epochs} epochs "
          f"of {args.steps} steps, unrolls of {args.unroll}")
    t0 = time.time()

    def progress(p):
        if p["epoch"] % args.eval_every == 0:
            print(f"  epoch {p['epoch']:4d}  train {p['train_loss']:.4f}  valid {p['valid_loss']:.4f}  "
                  f"best {p['best_valid']:.4f} (epoch {p['best_epoch']})  {p['seconds']:.0f} s", flush=True)

    if args.imitate:
        kind, lr = args.imitate.split(":")
        l2l.meta_train(net, task, epochs=args.imitate_epochs, steps=args.steps, unroll=args.unroll,
                       eval_every=args.eval_every, n_valid=20, seed=args.seed, estimator="imitate",
                       teacher=kind, teacher_lr=float(lr), callback=progress)
        print(f"imitation of {kind} at lr {lr}: {time.time() - t0:.0f} s")
    l2l.meta_train(net, task, epochs=args.epochs, steps=args.steps, unroll=args.unroll,
                   eval_every=args.eval_every, n_valid=20, seed=args.seed, objective=args.objective,
                   callback=progress)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    net.save(args.out, {"task": task.name, "trained_by": "examples/python/meta_train_torch.py",
                        "seed": args.seed, "epochs": args.epochs})
    print(f"meta-training: {time.time() - t0:.0f} s; saved {args.out}")

    t0 = time.time()
    best_lr, best = None, math.inf
    for lr in l2l.tune_grid():
        c = curves(task, torch_adam(lr), args.steps, args.seed, STREAM_VALID, args.tune_runs)
        final = c[:, -1].mean()
        if final < best:
            best_lr, best = lr, final
    print(f"torch.optim.Adam: best lr {best_lr:g} (mean final loss {best:.4f} on {args.tune_runs} "
          f"validation problems; {time.time() - t0:.0f} s)")

    L = curves(task, learned(net, task.n), args.steps, args.seed, STREAM_TEST, args.runs)
    A = curves(task, torch_adam(best_lr), args.steps, args.seed, STREAM_TEST, args.runs)
    S = args.steps
    print(f"{args.runs} fresh test problems (the same for both):")
    print(f"  {'':24s} {'loss at step ' + str(S):>18s} {'mean loss 1..' + str(S):>18s}")
    for name, c in (("learned (l2l)", L), (f"Adam lr {best_lr:g}", A)):
        print(f"  {name:24s} {c[:, S].mean():18.4f} {c[:, 1:].mean():18.4f}")
    for what, a, b in (("at step %d" % S, A[:, S], L[:, S]), ("mean over steps", A[:, 1:].mean(1), L[:, 1:].mean(1))):
        d, se = paired(a, b)
        print(f"  Adam - learned, {what}: {d:+.4f} ± {se:.4f} (paired standard error, {d / se:+.1f} SE)")


if __name__ == "__main__":
    main()
