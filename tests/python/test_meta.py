"""Meta-training from Python: a task family defined with PyTorch autograd drives
l2l_meta_train through ctypes callbacks; the result is a checkpoint that C programs load;
the same seed gives the same phi; an exception in a callback is raised, not swallowed."""
import os
import subprocess

import numpy as np
import pytest
import torch

import l2l


class Quadratics:
    """f(theta) = mean_b ||W_b theta_b - y_b||^2 over a batch of B functions of dimension D,
    W, y, theta0 ~ N(0, 1) drawn from torch seeded by the library's rng; each function is
    optimized on its own gradient (grad_scale = 1/B)."""

    def __init__(self, dim=5, batch=4):
        self.D, self.B = dim, batch
        self.n = dim * batch
        self.grad_scale = 1.0 / batch
        self.calls = 0

    def sample(self, rng):
        g = torch.Generator().manual_seed(rng.seed())
        self.W = torch.randn(self.B, self.D, self.D, generator=g)
        self.y = torch.randn(self.B, self.D, generator=g)
        return torch.randn(self.n, generator=g)

    def loss_grad(self, theta):
        self.calls += 1
        th = torch.from_numpy(theta).view(self.B, self.D).clone().requires_grad_(True)
        r = torch.bmm(self.W, th.unsqueeze(2)).squeeze(2) - self.y
        loss = (r * r).sum(1).mean()
        (grad,) = torch.autograd.grad(loss * self.B, th)  # each function's own gradient
        return loss.item(), grad.reshape(-1)


SETTINGS = dict(epochs=6, steps=20, unroll=5, eval_every=3, n_valid=4, seed=7)


def test_meta_train_from_python(c_helper, tmp_path):
    net = l2l.LSTM(layers=2, hidden=8, preproc="logsign", p=10, scale=1.0, seed=7)
    phi0 = net.phi.copy()
    task = Quadratics()
    history = l2l.meta_train(net, task, **SETTINGS)
    assert [h["epoch"] for h in history] == list(range(1, 7))
    assert all(np.isfinite(h["train_loss"]) for h in history)
    assert np.isfinite(history[-1]["best_valid"])
    assert not np.array_equal(net.phi, phi0)
    # 6 epochs of 20 steps (+1 loss at the end of each unroll... at least 20 a run) and
    # two validations of 4 problems: the callbacks ran
    assert task.calls >= 6 * 20 + 2 * 4 * 20

    # A normal checkpoint: C programs load it and step with it.
    path = tmp_path / "py.safetensors"
    net.save(path, {"task": "torch quadratics"})
    again = l2l.LSTM.load(path)
    assert np.array_equal(again.phi, net.phi) and again.metadata["task"] == "torch quadratics"
    n = 10
    np.ones((1, n), np.float32).tofile(tmp_path / "g.bin")
    np.zeros(n, np.float32).tofile(tmp_path / "t.bin")
    subprocess.run([c_helper("ref_steps"), str(path), "0", str(n), "1", tmp_path / "g.bin",
                    tmp_path / "t.bin", tmp_path / "o.bin", tmp_path / "s.bin"], check=True)
    theta = np.zeros(n, np.float32)
    l2l.Optimizer(path, n).step(np.ones(n, np.float32), theta)
    assert np.array_equal(np.fromfile(tmp_path / "o.bin", np.float32), theta)
    cli = os.path.join(os.path.dirname(l2l.library), "l2l")
    if os.path.exists(cli):  # the command-line tool reads it too
        out = subprocess.run([cli, "info", str(path)], capture_output=True, text=True, check=True).stdout
        assert "torch quadratics" in out

    # Same seed, same phi.
    net2 = l2l.LSTM(layers=2, hidden=8, preproc="logsign", p=10, scale=1.0, seed=7)
    l2l.meta_train(net2, Quadratics(), **SETTINGS)
    assert np.array_equal(net2.phi, net.phi)


class Failing(Quadratics):
    """Fails in the given callback once `problem` problems have been sampled and a few
    losses of the last one evaluated. With eval_every = 1 and n_valid = 1, problem 1 is
    epoch 1's training problem and problem 2 the first validation problem."""

    def __init__(self, where, problem):
        super().__init__()
        self.where, self.problem, self.samples, self.since = where, problem, 0, 0

    def sample(self, rng):
        self.samples += 1
        self.since = 0
        if self.where == "sample" and self.samples == self.problem:
            raise KeyError("sample failed on purpose")
        return super().sample(rng)

    def loss_grad(self, theta):
        self.since += 1
        if self.samples == self.problem and self.since >= 3:
            if self.where == "loss_grad":
                raise ZeroDivisionError("loss_grad failed on purpose")
            if self.where == "size":
                return 1.0, np.zeros(self.n + 1, np.float32)
        return super().loss_grad(theta)


@pytest.mark.parametrize("where,problem,exc,match", [
    ("loss_grad", 1, ZeroDivisionError, "on purpose"),  # in training
    ("loss_grad", 2, ZeroDivisionError, "on purpose"),  # in validation
    ("sample", 1, KeyError, "on purpose"),
    ("sample", 2, KeyError, "on purpose"),
    ("size", 1, ValueError, "has 21 values, the task has n = 20"),
])
def test_an_exception_in_a_callback_is_raised(where, problem, exc, match):
    net = l2l.LSTM(layers=1, hidden=4, seed=1)
    task = Failing(where, problem)
    with pytest.raises(exc, match=match) as e:
        l2l.meta_train(net, task, **dict(SETTINGS, eval_every=1, n_valid=1))
    assert task.samples == problem  # stopped at once: no further problem was drawn
    if problem == 1:  # training stops with the library's numeric error as the cause
        assert isinstance(e.value.__cause__, l2l.NumericError)


def test_a_callback_can_stop_training():
    net = l2l.LSTM(layers=1, hidden=4, seed=1)
    seen = []
    history = l2l.meta_train(net, Quadratics(), callback=lambda p: seen.append(p) or p["epoch"] == 2,
                             **SETTINGS)
    assert len(history) == 2 and len(seen) == 2


def test_bad_tasks():
    net = l2l.LSTM(layers=1, hidden=4, seed=1)
    with pytest.raises(TypeError, match="object has no n"):
        l2l.meta_train(net, object(), epochs=1)
    with pytest.raises(ValueError, match="estimator must be one of"):
        l2l.meta_train(net, Quadratics(), epochs=1, estimator="sgd")
    with pytest.raises(l2l.ArgumentError):
        l2l.meta_train(net, Quadratics(), epochs=1, lr=-1.0)
    with pytest.raises(ValueError, match="preproc"):
        l2l.LSTM(preproc="log")
    with pytest.raises(l2l.ArgumentError):
        l2l.LSTM(layers=9)
