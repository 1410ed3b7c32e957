#!/usr/bin/python3
"""PyTorch reference for l2l: the same learned optimizer, for fixtures and speed comparisons.

The model is l2l's exactly (see include/l2l.h and src/lstm_params.c):
  - coordinatewise: the N coordinates of theta are the rows of one batch;
  - preprocessing "logsign" (paper, Appendix A): x -> (log|x|/p, sgn x) if |x| >= e^-p,
    else (-1, e^p x); "logsign-rms": those two and x / sqrt(v + 1e-30), v <- 0.8 v + 0.2 x^2
    the coordinate's mean square, kept in the state after the layers' (h, c); "none": the
    raw gradient is the single input;
  - L stacked torch.nn.LSTMCell layers (gates i, f, g, o), then g = scale * out(h_top)
    (or g = scale * out(x) with no LSTM layer);
  - bias_hh is frozen (kept for PyTorch's layout only; its gradient is defined as 0);
  - an unroll of T steps: loss_t = f(theta_t), the gradient fed to the network is a constant
    (second derivatives dropped), theta_{t+1} = theta_t + g_t, meta-loss L = sum_{t=1..T} f(theta_t);
    theta and the LSTM state carry on into the next unroll with no gradient across the boundary.

Subcommands:
  fixture      writes tests/fixtures/torch_unroll.safetensors (float64 reference, stored as F32)
  selfcheck    the authors' test vector (f = x^2, no LSTM layer; docs/METHOD.md section 4)
  mnist-epoch  seconds per meta-training epoch on MNIST (15,910 coordinates, 100 steps)
  sweep        meta-training throughput on quadratics of N coordinates, one fresh process per N

Only torch, numpy and the standard library. Run with Debian's /usr/bin/python3.
"""
import argparse
import gzip
import json
import math
import os
import resource
import statistics
import struct
import subprocess
import sys
import time


def set_thread_env(threads):
    """Thread counts must be in the environment before torch (and OpenBLAS) is loaded."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)


def import_torch(threads=None):
    if threads is not None:
        set_thread_env(threads)
    import torch
    if threads is not None:
        torch.set_num_threads(threads)
    return torch


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


# --------------------------------------------------------------------------- the model

def build_model(torch, layers, hidden, preproc, p, scale):
    nn = torch.nn

    class LearnedOptimizer(nn.Module):
        def __init__(self):
            super().__init__()
            self.preproc, self.p, self.scale = preproc, float(p), float(scale)
            self.n_in = {"none": 1, "logsign": 2, "logsign-rms": 3}[preproc]
            self.hidden = hidden if layers > 0 else 0
            self.cells = nn.ModuleList(
                nn.LSTMCell(self.n_in if l == 0 else hidden, hidden) for l in range(layers))
            for cell in self.cells:
                cell.bias_hh.requires_grad_(False)  # frozen: not trained in l2l
            self.out = nn.Linear(hidden if layers > 0 else self.n_in, 1)

        def preprocess(self, g, v=None):  # g (N) -> x (N, D) and the new v; g carries no gradient
            if self.preproc == "none":
                return g.unsqueeze(1), v
            a = g.abs()
            big = a >= math.exp(-self.p)
            x1 = torch.where(big, torch.log(a) / self.p, torch.full_like(g, -1.0))
            x2 = torch.where(big, torch.sign(g), g * math.exp(self.p))
            if self.preproc == "logsign":
                return torch.stack((x1, x2), 1), v
            v = 0.8 * v + 0.2 * g * g
            return torch.stack((x1, x2, g / torch.sqrt(v + 1e-30)), 1), v

        def zero_state(self, n, dtype=None):
            """[(h, c) per layer], then logsign-rms's v (N)."""
            state = [(torch.zeros(n, self.hidden, dtype=dtype), torch.zeros(n, self.hidden, dtype=dtype))
                     for _ in self.cells]
            return state + [torch.zeros(n, dtype=dtype)] if self.preproc == "logsign-rms" else state

        def layers(self, state):
            return state[:len(self.cells)]

        def forward(self, g, state):  # -> update (N), new state
            rms = self.preproc == "logsign-rms"
            x, v = self.preprocess(g, state[-1] if rms else None)
            new_state = []
            for cell, hc in zip(self.cells, self.layers(state)):
                h, c = cell(x, hc)  # one batched call over all N coordinates
                new_state.append((h, c))
                x = h
            return self.scale * self.out(x).squeeze(1), new_state + [v] if rms else new_state

        def named_tensors(self):  # l2l's names and order (src/lstm_params.c)
            for l, cell in enumerate(self.cells):
                yield "lstm%d.weight_ih" % (l + 1), cell.weight_ih
                yield "lstm%d.weight_hh" % (l + 1), cell.weight_hh
                yield "lstm%d.bias_ih" % (l + 1), cell.bias_ih
                yield "lstm%d.bias_hh" % (l + 1), cell.bias_hh
            yield "out.weight", self.out.weight
            yield "out.bias", self.out.bias

        def trained(self):
            return [(n, t) for n, t in self.named_tensors() if t.requires_grad]

        def init_authors(self):
            """The authors' initialisation, as l2l_lstm_init does it (not the same numbers)."""
            with torch.no_grad():
                for cell in self.cells:
                    std = 1.0 / math.sqrt(cell.input_size + cell.hidden_size)
                    for t in (cell.weight_ih, cell.weight_hh, cell.bias_ih):
                        nn.init.trunc_normal_(t, std=std, a=-2 * std, b=2 * std)
                    cell.bias_ih[cell.hidden_size:2 * cell.hidden_size] += 1.0  # forget bias
                    cell.bias_hh.zero_()
                std = 1.0 / math.sqrt(self.hidden if self.hidden else 20.0)
                nn.init.trunc_normal_(self.out.weight, std=std, a=-2 * std, b=2 * std)
                self.out.bias.zero_()

    return LearnedOptimizer()


def unroll(torch, net, task, theta, state, T, record=None):
    """One truncated unroll of T steps from theta (N) and state, both detached here.

    task(theta) -> (loss, grad_loss): loss is the reported loss (its sum over t = 1..T is the
    meta-loss), grad_loss the function whose gradient the optimizer sees.
    Returns (meta_loss, [f(theta_0..theta_T)], theta_T, state_T), the last two still in the graph.
    """
    theta = theta.detach().requires_grad_(True)
    state = detach(state)
    losses, meta = [], 0.0
    for t in range(T + 1):
        loss, grad_loss = task(theta)
        losses.append(loss.item())
        if t > 0:
            meta = meta + loss
        if t == T:
            break
        # The gradient fed to the optimizer is a constant: no second derivatives.
        (g,) = torch.autograd.grad(grad_loss, theta, retain_graph=True)
        update, state = net(g, state)
        if record is not None and t == 0:
            record["x"] = net.preprocess(g, torch.zeros_like(g))[0]
            record["update"] = update
            record["state"] = state
        theta = theta + update
    return meta, losses, theta, state


def detach(state):
    return [tuple(t.detach() for t in s) if isinstance(s, tuple) else s.detach() for s in state]


def quadratic_task(W, y):
    """Paper mode: B functions f_b = ||W_b theta_b - y_b||^2 side by side; the loss is their
    mean, and each coordinate sees the gradient of its own function (of the sum)."""
    B, dim = y.shape

    def task(theta):
        r = (W @ theta.view(B, dim, 1)).squeeze(2) - y
        f = (r * r).sum(1)  # (B)
        return f.mean(), f.sum()

    return task


# -------------------------------------------------------------------- safetensors I/O

def write_safetensors(path, tensors, metadata):
    """tensors: list of (name, numpy array); all stored as little-endian F32."""
    import numpy as np
    header, blobs, off = {"__metadata__": metadata}, [], 0
    for name, arr in tensors:
        b = np.ascontiguousarray(arr, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * (-len(h) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_safetensors(path):
    import numpy as np
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    out = {}
    for name, d in header.items():
        assert d["dtype"] == "F32", name
        lo, hi = d["data_offsets"]
        out[name] = np.frombuffer(data[8 + n + lo:8 + n + hi], dtype="<f4").reshape(d["shape"])
    return out, meta


# ----------------------------------------------------------------------------- fixture

def cmd_fixture(args):
    torch = import_torch(1)
    import numpy as np
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(args.seed)

    def f32(t):  # round to float32 and back, so C starts from exactly the same numbers
        return t.float().double()

    def npy(t):
        return t.detach().double().numpy().astype(np.float32)

    T = 4
    tensors, meta = [], {
        "format": "l2l PyTorch reference fixture, written by bench/torch_l2l.py fixture",
        "torch": torch.__version__,
        "seed": str(args.seed),
        "precision": "computed in float64 from float32-exact inputs, stored as F32",
        "model": "LSTMCell gates i,f,g,o; gates = W_ih x + b_ih + W_hh h + b_hh (bias_hh frozen, "
                 "its gradient is 0 and not stored); update = scale * (out.weight h_top + out.bias)",
        "unroll": "T=4 steps: grad_t = d f_sum/d theta_t (a constant), theta_{t+1} = theta_t + update_t; "
                  "<p>.u<k>.losses = mean loss f(theta_0..theta_T); <p>.u<k>.grad.<name> = "
                  "d/dphi sum_{t=1..T} f(theta_t); <p>.u<k>.theta, .h, .c = theta_T and state (L,N,H) "
                  "at the end of unroll k; with logsign-rms also .v (N), the mean square",
        "unrolls": "unroll 2 starts from unroll 1's theta and state (detached), at the same phi "
                   "(no meta-update in between); both start-of-run states are zero",
        "task": "paper quadratic: B functions f_b = ||W_b theta_b - y_b||^2 on theta[b*dim:(b+1)*dim]; "
                "reported loss = mean over b; each function optimized on its own gradient (grad_scale 1/B)",
        "step0": "<p>.step0.x (N,D) the preprocessed first gradient, <p>.step0.h/.c (L,N,H) the state "
                 "and <p>.step0.update (N) the update after the first step of <p>.u1 (p = a, c)",
        "T": str(T),
    }
    configs = [
        # prefix, layers, hidden, preproc, p, scale, dim, B, unrolls, W/y std
        ("a", 2, 5, "logsign", 10.0, 0.1, 3, 2, 2, 1.0),
        ("b", 1, 3, "none", 10.0, 1.0, 3, 2, 1, 0.2),
        ("c", 2, 4, "logsign-rms", 10.0, 0.1, 3, 2, 2, 1.0),
    ]
    for prefix, L, H, preproc, p, scale, dim, B, n_unrolls, wstd in configs:
        meta[prefix + ".config"] = ("layers=%d hidden=%d preproc=%s p=%g scale=%g" % (L, H, preproc, p, scale))
        meta[prefix + ".task"] = ("quadratic dim=%d batch=%d N=%d; W, y ~ N(0, %g^2), theta0 ~ N(0, 1); "
                                  "phi ~ N(0, 0.3^2) (bias_hh too)" % (dim, B, dim * B, wstd))
        meta[prefix + ".unrolls"] = str(n_unrolls)
        net = build_model(torch, L, H, preproc, p, scale).double()
        with torch.no_grad():
            for _, t in net.named_tensors():
                t.copy_(f32(torch.randn_like(t) * 0.3))
        W = f32(torch.randn(B, dim, dim) * wstd)
        y = f32(torch.randn(B, dim) * wstd)
        theta = f32(torch.randn(B * dim))
        for name, t in net.named_tensors():
            tensors.append(("%s.%s" % (prefix, name), npy(t)))
        tensors += [(prefix + ".W", npy(W)), (prefix + ".y", npy(y)), (prefix + ".theta0", npy(theta))]
        task = quadratic_task(W, y)
        state = net.zero_state(B * dim)
        trained = net.trained()
        for u in range(1, n_unrolls + 1):
            record = {} if (prefix in ("a", "c") and u == 1) else None
            mloss, losses, theta, state = unroll(torch, net, task, theta, state, T, record)
            grads = torch.autograd.grad(mloss, [t for _, t in trained])
            q = "%s.u%d." % (prefix, u)
            tensors.append((q + "losses", np.array(losses, dtype=np.float32)))
            tensors.append((q + "theta", npy(theta)))
            tensors.append((q + "h", npy(torch.stack([h for h, _ in net.layers(state)]))))
            tensors.append((q + "c", npy(torch.stack([c for _, c in net.layers(state)]))))
            if preproc == "logsign-rms":
                tensors.append((q + "v", npy(state[-1])))
            for (name, _), g in zip(trained, grads):
                tensors.append((q + "grad." + name, npy(g)))
            if record is not None:
                tensors.append((prefix + ".step0.x", npy(record["x"])))
                tensors.append((prefix + ".step0.h", npy(torch.stack([h for h, _ in net.layers(record["state"])]))))
                tensors.append((prefix + ".step0.c", npy(torch.stack([c for _, c in net.layers(record["state"])]))))
                tensors.append((prefix + ".step0.update", npy(record["update"])))
            theta = theta.detach()
            state = detach(state)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    write_safetensors(args.out, tensors, meta)
    back, _ = read_safetensors(args.out)
    for name, arr in tensors:
        assert np.array_equal(back[name], arr.astype(np.float32)), name
    print("wrote %s: %d tensors, %d bytes" % (args.out, len(tensors), os.path.getsize(args.out)))
    for name, arr in tensors:
        if ".losses" in name:
            print("  %s = %s" % (name, " ".join("%.6g" % v for v in arr)))


# --------------------------------------------------------------------------- selfcheck

def cmd_selfcheck(args):
    """The authors' test vector (docs/METHOD.md section 4): f(x) = x^2, x0 = 1, no LSTM
    layer (g = w grad + b, w = b = 0), no preprocessing, scale 1, unroll 5, two unrolls,
    meta-Adam lr 0.01."""
    torch = import_torch(1)
    torch.set_default_dtype(torch.float64)
    net = build_model(torch, 0, 0, "none", 10.0, 1.0)
    with torch.no_grad():
        net.out.weight.zero_()
        net.out.bias.zero_()
    opt = torch.optim.Adam([t for _, t in net.trained()], lr=0.01, betas=(0.9, 0.999), eps=1e-8)

    def task(theta):
        f = (theta * theta).sum()
        return f, f

    theta, state = torch.ones(1), net.zero_state(1)
    for u in range(2):
        mloss, losses, theta, state = unroll(torch, net, task, theta, state, 5)
        opt.zero_grad()
        mloss.backward()
        if u == 0:
            gw, gb = net.out.weight.grad.item(), net.out.bias.grad.item()
            assert abs(gw - 60) < 1e-9 and abs(gb - 30) < 1e-9, (gw, gb)
        opt.step()
        theta = theta.detach()
    x, fx = theta.item(), losses[-1]
    print("first unroll dL/dw = %g, dL/db = %g; after two unrolls x = %.7f, f(x) = %.7f" % (gw, gb, x, fx))
    assert abs(x - 0.8559) < 5e-5 and abs(fx - 0.7325327) < 1e-6, (x, fx)
    print("selfcheck passed (the authors' test vector: x = 0.8559, f(x) = 0.7325327)")


# ----------------------------------------------------------------------------- MNIST

def read_idx(path):
    import numpy as np
    for candidate in (path, path + ".gz"):
        if os.path.exists(candidate):
            opener = gzip.open if candidate.endswith(".gz") else open
            with opener(candidate, "rb") as f:
                data = f.read()
            break
    else:
        sys.exit("error: %s(.gz) not found; run scripts/fetch_mnist.sh data/mnist first" % path)
    magic, = struct.unpack(">I", data[:4])
    ndim = magic & 0xFF
    if magic >> 8 != 0x08 or not 1 <= ndim <= 3:
        sys.exit("error: %s: not an unsigned-byte IDX file (magic 0x%08x)" % (path, magic))
    shape = struct.unpack(">%dI" % ndim, data[4:4 + 4 * ndim])
    count = int(np.prod(shape))
    if len(data) != 4 + 4 * ndim + count:
        sys.exit("error: %s: %d bytes, header says %d" % (path, len(data), 4 + 4 * ndim + count))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def mnist_task(torch, images, labels, batch, hidden):
    """784 -> hidden sigmoid -> 10, softmax cross-entropy, a fresh minibatch (with
    replacement) for every loss evaluation. theta = [W1 (784,H), b1 (H), W2 (H,10), b2 (10)]."""
    n_img, n_pix = images.shape
    F = torch.nn.functional
    sizes = [n_pix * hidden, hidden, hidden * 10, 10]
    n = sum(sizes)

    def task(theta):
        w1, b1, w2, b2 = torch.split(theta, sizes)
        idx = torch.randint(n_img, (batch,))
        h = torch.sigmoid(torch.addmm(b1, images[idx], w1.view(n_pix, hidden)))
        loss = F.cross_entropy(torch.addmm(b2, h, w2.view(hidden, 10)), labels[idx])
        return loss, loss

    return task, n


def meta_train_epochs(torch, net, opt, task, n, init_std, steps, T, epochs, on_epoch=None):
    """epochs fresh optimizees, each run for `steps` steps in unrolls of T, one Adam step per unroll."""
    for _ in range(epochs):
        t0 = time.perf_counter()
        theta = torch.randn(n) * init_std
        state = net.zero_state(n)
        for _ in range(steps // T):
            mloss, _, theta, state = unroll(torch, net, task, theta, state, T)
            opt.zero_grad(set_to_none=True)
            mloss.backward()
            opt.step()
        if on_epoch:
            on_epoch(time.perf_counter() - t0)


def cmd_mnist_epoch(args):
    torch = import_torch(args.threads)
    import numpy as np
    torch.manual_seed(args.seed)
    images = read_idx(os.path.join(args.data, "train-images-idx3-ubyte"))
    labels = read_idx(os.path.join(args.data, "train-labels-idx1-ubyte"))
    images = torch.from_numpy(images.reshape(images.shape[0], -1).astype(np.float32) / 255.0)
    labels = torch.from_numpy(labels.astype(np.int64))
    task, n = mnist_task(torch, images, labels, 128, 20)
    net = build_model(torch, 2, 20, "logsign", 10.0, 0.1)
    net.init_authors()
    opt = torch.optim.Adam([t for _, t in net.trained()], lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    times, load0 = [], os.getloadavg()[0]
    meta_train_epochs(torch, net, opt, task, n, 0.01, 100, 20, 1)  # warm-up
    meta_train_epochs(torch, net, opt, task, n, 0.01, 100, 20, args.epochs, times.append)
    med = statistics.median(times)
    print(json.dumps({"impl": "pytorch", "task": "mnist", "threads": args.threads,
                      "torch": torch.__version__,
                      "seconds_per_epoch_median": round(med, 4),
                      "seconds_per_epoch": [round(t, 4) for t in times],
                      "peak_rss_mb": round(peak_rss_mb(), 1),
                      "coordinate_steps_per_s": round(n * 100 / med, 1),
                      "loadavg_1min": [load0, os.getloadavg()[0]]}))


# ----------------------------------------------------------------------------- sweep

def mem_available_bytes():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def cmd_sweep_one(args):
    if args.mem_limit_gb > 0:  # fail with an error, not the OOM killer, on a shared machine
        lim = int(args.mem_limit_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (lim, lim))
    torch = import_torch(args.threads)
    torch.manual_seed(args.seed)
    n, dim = args.n, 10
    B = n // dim
    net = build_model(torch, args.layers, args.hidden, args.preproc, 10.0, args.scale)
    net.init_authors()
    opt = torch.optim.Adam([t for _, t in net.trained()], lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    task = quadratic_task(torch.randn(B, dim, dim), torch.randn(B, dim))
    theta0 = torch.randn(B * dim)
    times, load0 = [], os.getloadavg()[0]
    for rep in range(args.repeats + 1):  # the first run is a warm-up
        t0 = time.perf_counter()
        mloss, _, _, _ = unroll(torch, net, task, theta0, net.zero_state(B * dim), args.steps)
        opt.zero_grad(set_to_none=True)
        mloss.backward()
        opt.step()
        del mloss
        if rep > 0:
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    print(json.dumps({"impl": "pytorch", "task": "quadratic", "n": B * dim, "threads": args.threads,
                      "steps": args.steps, "seconds_median": round(med, 5),
                      "coordinate_steps_per_s": round(B * dim * args.steps / med, 1),
                      "peak_rss_mb": round(peak_rss_mb(), 1),
                      "loadavg_1min": [load0, os.getloadavg()[0]]}))


def cmd_sweep(args):
    limit = args.mem_limit_gb if args.mem_limit_gb else 0.5 * mem_available_bytes() / 2**30
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(args.threads)
    for n in (int(s) for s in args.n.split(",")):
        cmd = [sys.executable, os.path.abspath(__file__), "sweep-one", "--threads", str(args.threads),
               "--n", str(n), "--steps", str(args.steps), "--repeats", str(args.repeats),
               "--layers", str(args.layers), "--hidden", str(args.hidden), "--preproc", args.preproc,
               "--scale", str(args.scale), "--seed", str(args.seed), "--mem-limit-gb", "%.2f" % limit]
        r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines = [l for l in r.stdout.splitlines() if l.startswith("{")]
        if r.returncode == 0 and lines:
            print(lines[-1], flush=True)
        else:
            why = (r.stderr.strip().splitlines() or ["exit status %d" % r.returncode])[-1]
            print(json.dumps({"impl": "pytorch", "task": "quadratic", "n": n, "threads": args.threads,
                              "error": why[:300], "mem_limit_gb": round(limit, 2)}), flush=True)


# ------------------------------------------------------------------------------ main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("fixture", help="write the C test fixture")
    p.add_argument("--out", default="tests/fixtures/torch_unroll.safetensors")
    p.add_argument("--seed", type=int, default=1606)
    p = sub.add_parser("selfcheck", help="the authors' exact x^2 check")
    p = sub.add_parser("mnist-epoch", help="seconds per MNIST meta-training epoch")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--epochs", type=int, default=3, help="timed epochs, after 1 warm-up epoch")
    p.add_argument("--data", default="data/mnist")
    p.add_argument("--seed", type=int, default=1)
    for name in ("sweep", "sweep-one"):
        p = sub.add_parser(name, help="quadratic meta-training throughput against N"
                           if name == "sweep" else argparse.SUPPRESS)
        p.add_argument("--threads", type=int, default=1)
        p.add_argument("--n", default="1000,10000,100000,1000000" if name == "sweep" else "1000",
                       type=str if name == "sweep" else int)
        p.add_argument("--steps", type=int, default=20, help="unroll length")
        p.add_argument("--repeats", type=int, default=3, help="timed runs (median), after a warm-up")
        p.add_argument("--layers", type=int, default=2)
        p.add_argument("--hidden", type=int, default=20)
        p.add_argument("--preproc", choices=("none", "logsign"), default="logsign")
        p.add_argument("--scale", type=float, default=0.1)
        p.add_argument("--seed", type=int, default=1)
        p.add_argument("--mem-limit-gb", type=float, default=0.0,
                       help="address-space limit per run (default: half of MemAvailable)")
    args = ap.parse_args()
    {"fixture": cmd_fixture, "selfcheck": cmd_selfcheck, "mnist-epoch": cmd_mnist_epoch,
     "sweep": cmd_sweep, "sweep-one": cmd_sweep_one}[args.cmd](args)


if __name__ == "__main__":
    main()
