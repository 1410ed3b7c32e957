"""The binding steps exactly as the C library does: the same gradients give bit-identical
thetas (and states) from a C program that calls libl2l directly (ref_steps.c), from the
NumPy optimizer and from the torch one; and bad input raises clear Python exceptions."""
import subprocess

import numpy as np
import pytest
import torch

import l2l
import l2l.torch
from conftest import CHECKPOINT

STEPS = 6
CASES = [("sgd", 0.1), ("nag", 0.1), ("rmsprop", 0.01), ("adam", 0.01), ("nag-floor", 0.1),
         (CHECKPOINT, None)]


def mlp():
    """The MNIST network's shapes (784-20-10): N = 15,910 in four tensors."""
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(784, 20), torch.nn.Sigmoid(), torch.nn.Linear(20, 10))


def gradients(n, seed=1):
    """STEPS gradients of mixed scales: large, tiny (below nag-floor's floor and the LSTM
    preprocessing's threshold), zeros and negative zeros."""
    rng = np.random.default_rng(seed)
    g = rng.standard_normal((STEPS, n)).astype(np.float32)
    g *= np.float32(10.0) ** rng.integers(-8, 2, size=(STEPS, n)).astype(np.float32)
    g[:, :7] = 0.0
    g[:, 7:9] = -0.0
    return g


def as_bits(a):
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)


def assert_bit_identical(found, expected, what):
    diff = np.flatnonzero(as_bits(found).ravel() != as_bits(expected).ravel())
    if diff.size:
        i = diff[0]
        raise AssertionError(f"{what}: {diff.size} of {found.size} values differ; first at {i}: "
                             f"C {expected.ravel()[i]!r}, binding {found.ravel()[i]!r}")


@pytest.mark.parametrize("optimizer,lr", CASES, ids=[c[0] if c[1] else "mnist.safetensors" for c in CASES])
def test_same_gradients_give_bit_identical_updates(c_helper, tmp_path, optimizer, lr):
    model = mlp()
    params = list(model.parameters())
    theta0 = torch.cat([p.detach().reshape(-1) for p in params]).numpy().copy()
    n = theta0.size
    assert n == 15910
    grads = gradients(n)
    grads.tofile(tmp_path / "grads.bin")
    theta0.tofile(tmp_path / "theta0.bin")

    # C: libl2l called by a C program, no Python in between.
    subprocess.run([c_helper("ref_steps"), str(optimizer), str(lr or 0), str(n), str(STEPS),
                    tmp_path / "grads.bin", tmp_path / "theta0.bin", tmp_path / "out.bin",
                    tmp_path / "state.bin"], check=True)
    c_thetas = np.fromfile(tmp_path / "out.bin", np.float32).reshape(STEPS, n)
    c_state = np.fromfile(tmp_path / "state.bin", np.float32)

    # NumPy.
    opt = l2l.Optimizer(optimizer, n, lr=lr)
    theta = theta0.copy()
    for t in range(STEPS):
        opt.step(grads[t], theta)
        assert_bit_identical(theta, c_thetas[t], f"NumPy optimizer, step {t + 1}")
    assert_bit_identical(opt.state, c_state, "NumPy optimizer's state")

    # torch: the model's own parameters, gradients set per parameter.
    topt = l2l.torch.LearnedOptimizer(params, optimizer, lr=lr)
    sizes = [p.numel() for p in params]
    for t in range(STEPS):
        for p, g in zip(params, torch.from_numpy(grads[t]).split(sizes)):
            p.grad = g.view_as(p).clone()
        topt.step()
        flat = torch.cat([p.detach().reshape(-1) for p in params]).numpy()
        assert_bit_identical(flat, c_thetas[t], f"torch optimizer, step {t + 1}")
    assert_bit_identical(topt.state_dict()["state"][0]["l2l_state"].numpy(), c_state, "torch optimizer's state")


def test_a_replaced_parameter_storage_is_still_stepped_correctly():
    """After param.data = new tensor the flat view is gone; the step copies in and out."""
    model = mlp()
    params = list(model.parameters())
    opt = l2l.torch.LearnedOptimizer(params, "sgd", lr=0.5)
    params[0].data = params[0].data.clone()
    before = [p.detach().clone() for p in params]
    for p in params:
        p.grad = torch.ones_like(p)
    opt.step()
    for p, b in zip(params, before):
        assert torch.equal(p.detach(), b - 0.5)


# ----------------------------------------------------------------------- bad input

def test_missing_checkpoint(tmp_path):
    path = tmp_path / "missing.safetensors"
    with pytest.raises(l2l.FileError) as e:
        l2l.Optimizer(str(path), 10)
    assert str(path) in str(e.value) and isinstance(e.value, OSError)
    with pytest.raises(l2l.FileError):
        l2l.torch.LearnedOptimizer(mlp().parameters(), path)
    with pytest.raises(ValueError, match="neither an optimizer kind"):
        l2l.Optimizer("adamw", 10, lr=0.1)


@pytest.mark.parametrize("content", [b"", b"not a safetensors file at all", b"\xff" * 64, "truncated"])
def test_malformed_checkpoint(tmp_path, content):
    path = tmp_path / "bad.safetensors"
    if content == "truncated":
        with open(CHECKPOINT, "rb") as f:
            content = f.read()[:200]
    path.write_bytes(content)
    with pytest.raises(l2l.FormatError) as e:
        l2l.LSTM.load(path)
    assert str(path) in str(e.value) or "safetensors" in str(e.value)
    assert e.value.status == "FORMAT"


def test_bad_optimizer_arguments():
    with pytest.raises(ValueError, match="needs a learning rate"):
        l2l.Optimizer("adam", 10)
    with pytest.raises(l2l.ArgumentError, match="learning rate"):
        l2l.Optimizer("adam", 10, lr=-1)
    with pytest.raises(ValueError, match="no learning rate"):
        l2l.Optimizer(CHECKPOINT, 10, lr=0.1)
    with pytest.raises(ValueError, match="at least 1"):
        l2l.Optimizer("sgd", 0, lr=0.1)
    with pytest.raises(TypeError, match="checkpoint path"):
        l2l.Optimizer(3.0, 10)


def test_bad_gradients_numpy():
    opt = l2l.Optimizer(CHECKPOINT, 10)
    theta = np.zeros(10, np.float32)
    with pytest.raises(TypeError, match="float32, got float64"):
        opt.step(np.zeros(10), theta)
    with pytest.raises(TypeError, match="float32"):
        opt.step(np.zeros(10, np.float32), np.zeros(10))
    with pytest.raises(ValueError, match="has 11 elements, the optimizer was made for 10"):
        opt.step(np.zeros(11, np.float32), theta)
    with pytest.raises(ValueError, match="C-contiguous"):
        opt.step(np.zeros(20, np.float32)[::2], theta)
    with pytest.raises(TypeError, match="numpy.ndarray"):
        opt.step([0.0] * 10, theta)
    with pytest.raises(TypeError, match="numpy.ndarray"):
        opt.step(torch.zeros(10), theta)
    ro = np.zeros(10, np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        opt.step(np.zeros(10, np.float32), ro)
    assert opt.state[0] == 0  # nothing was stepped


def test_bad_states():
    opt = l2l.Optimizer("adam", 10, lr=0.1)
    with pytest.raises(l2l.ArgumentError, match="state of 21 floats, got 5"):
        opt.load_state(np.zeros(5, np.float32))
    s = opt.state
    s[3] = np.nan
    with pytest.raises(l2l.NumericError, match="finite"):
        opt.load_state(s)
    s[3] = 0
    s[15] = -1  # in the second moment
    with pytest.raises(l2l.NumericError, match="float 15 of 21 is -1, in a mean square"):
        opt.load_state(s)
    with pytest.raises(TypeError, match="float32"):
        opt.load_state(np.zeros(21))


def test_bad_parameters_torch():
    with pytest.raises(TypeError, match="float64"):
        l2l.torch.LearnedOptimizer(torch.nn.Linear(3, 2).double().parameters(), CHECKPOINT)
    with pytest.raises(TypeError, match="device 'meta'"):
        l2l.torch.LearnedOptimizer(torch.nn.Linear(3, 2, device="meta").parameters(), CHECKPOINT)
    with pytest.raises(ValueError, match="empty parameter list"):
        l2l.torch.LearnedOptimizer([], CHECKPOINT)


def test_bad_gradients_torch():
    model = torch.nn.Linear(3, 2)
    opt = l2l.torch.LearnedOptimizer(model.parameters(), CHECKPOINT)
    with pytest.raises(ValueError, match=r"parameter 0 \(shape \(2, 3\)\) has no gradient"):
        opt.step()
    # torch refuses to set a gradient of another dtype, size or device on a parameter, so
    # stand-ins carry them to the step's checks.

    class FakeDevice:
        type = "cuda"

        def __str__(self):
            return "cuda:0"

    class CudaLooking(torch.Tensor):  # a CPU tensor that says it is on a GPU
        @property
        def device(self):
            return FakeDevice()

    class Stand:
        def __init__(self, grad):
            self.grad, self.shape = grad, (2, 3)

    real = opt._params[0]
    for grad, err, match in [(torch.zeros(6, dtype=torch.float64), TypeError, "torch.float64"),
                             (torch.zeros(7), ValueError, "has 7 elements, expected 6"),
                             (torch.zeros(6).as_subclass(CudaLooking), TypeError, "device 'cuda:0'")]:
        opt._params[0] = Stand(grad)
        with pytest.raises(err, match=match):
            opt.step()
    opt._params[0] = real
