#!/usr/bin/python3
"""The Python binding's overhead: seconds per optimizer step through the binding against
the same step in a C program, at N = 15,910 (the MNIST network) and N = 10^6.

  C        a loop of l2l_optimizer_step in C (written out here, compiled against
           include/l2l.h and the same libl2l.so, and called once per turn);
  NumPy    l2l.Optimizer.step(grad, theta) on float32 arrays;
  torch    l2l.torch.LearnedOptimizer.step() on a model's parameters (784-20-10 MLP; for
           10^6 one Linear(999, 1000)), gradients gathered from .grad each step.

All use the shipped learned optimizer (models/mnist.safetensors) and the same OpenMP
threads. The three are measured in turns in one process, --reps times, so that a change
of load hits all three; each one's figure is its median over the turns, and the ratio
binding / C is the median of the turns' own ratios. The hand-written SGD (a step of N multiply-adds) shows the binding's own
cost: argument checks, the gradient gather, the ctypes call. Run with nothing else on the
machine, or under `nice` and say what the load was.

    PYTHONPATH=python /usr/bin/python3 bench/bench_python.py [--reps 21]
"""
import argparse
import ctypes
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "python"))
import l2l  # noqa: E402

C_SOURCE = r"""
#include <time.h>
#include "l2l.h"
/* Seconds per l2l_optimizer_step over `steps` steps of a C loop. */
double c_steps(l2l_optimizer *o, const float *grad, float *theta, int steps)
{
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int t = 0; t < steps; t++) l2l_optimizer_step(o, grad, theta);
    clock_gettime(CLOCK_MONOTONIC, &b);
    return ((b.tv_sec - a.tv_sec) + 1e-9 * (b.tv_nsec - a.tv_nsec)) / steps;
}
"""


def build_c(tmp):
    """The C loop as a shared object linked to the same libl2l.so, loaded in this process."""
    src, so = os.path.join(tmp, "bench_step.c"), os.path.join(tmp, "bench_step.so")
    with open(src, "w") as f:
        f.write(C_SOURCE)
    libdir = os.path.dirname(l2l.library)
    subprocess.run([os.environ.get("CC", "cc"), "-std=c11", "-O2", "-fPIC", "-shared",
                    "-D_POSIX_C_SOURCE=200809L", "-I", os.path.join(ROOT, "include"), src, "-o", so,
                    "-L", libdir, "-ll2l", "-Wl,-rpath," + libdir], check=True)
    f = ctypes.CDLL(so).c_steps
    f.restype = ctypes.c_double
    f.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int]
    return f


def time_steps(step, steps):
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - t0) / steps


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=21)
    ap.add_argument("--checkpoint", default=os.path.join(ROOT, "models", "mnist.safetensors"))
    args = ap.parse_args()
    import torch
    import l2l.torch
    torch.set_num_threads(1)  # the copies are memory-bound; the step has its own threads

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    print(f"CPU: {cpu}; {os.cpu_count()} logical CPUs; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}; "
          f"load average before: {os.getloadavg()[0]:.2f}")
    print(f"library: {l2l.library}")
    with tempfile.TemporaryDirectory() as tmp:
        c_steps = build_c(tmp)
        print(f"{'optimizer':>10s} {'N':>9s} {'steps':>6s} {'C ms':>9s} {'NumPy ms':>9s} {'torch ms':>9s} "
              f"{'NumPy/C':>8s} {'torch/C':>8s}")
        mnist = lambda: torch.nn.Sequential(torch.nn.Linear(784, 20), torch.nn.Sigmoid(),  # noqa: E731
                                            torch.nn.Linear(20, 10))
        big = lambda: torch.nn.Linear(999, 1000)  # noqa: E731
        # The learned optimizer, then SGD: a step of N multiply-adds, where the binding's
        # own cost (argument checks, the gradient gather, the ctypes call) shows.
        for optimizer, n, steps, model in [
            (args.checkpoint, 15910, 50, mnist), (args.checkpoint, 10 ** 6, 2, big),
            ("sgd", 15910, 1000, mnist), ("sgd", 10 ** 6, 20, big),
        ]:
            rng = np.random.default_rng(1)
            grad = (1e-2 * rng.standard_normal(n)).astype(np.float32)
            theta = np.zeros(n, np.float32)
            lr = 0.01 if optimizer in l2l.KINDS else None
            opt = l2l.Optimizer(optimizer, n, lr=lr)
            m = model()
            params = list(m.parameters())
            assert sum(p.numel() for p in params) == n
            topt = l2l.torch.LearnedOptimizer(params, optimizer, lr=lr)
            for p, g in zip(params, torch.from_numpy(grad).split([p.numel() for p in params])):
                p.grad = g.view_as(p).clone()
            c_ptr = ctypes.addressof(opt._opt)
            runners = {"C": lambda: c_steps(c_ptr, grad.ctypes.data, theta.ctypes.data, steps),
                       "NumPy": lambda: time_steps(lambda: opt.step(grad, theta), steps),
                       "torch": lambda: time_steps(topt.step, steps)}
            for run in runners.values():  # warm-up
                run()
            times = {k: [] for k in runners}
            # In turns, C NumPy torch then torch NumPy C, so that a drift of the load hits
            # all three alike; the ratios are medians of each turn's own ratio.
            for rep in range(args.reps):
                for k in (list(runners) if rep % 2 == 0 else list(runners)[::-1]):
                    times[k].append(runners[k]())
            c, a, b = (statistics.median(times[k]) for k in runners)
            ra = statistics.median(x / y for x, y in zip(times["NumPy"], times["C"]))
            rb = statistics.median(x / y for x, y in zip(times["torch"], times["C"]))
            name = "lstm" if optimizer == args.checkpoint else optimizer
            print(f"{name:>10s} {n:9d} {steps:6d} {1e3 * c:9.3f} {1e3 * a:9.3f} {1e3 * b:9.3f} {ra:8.3f} {rb:8.3f}",
                  flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
