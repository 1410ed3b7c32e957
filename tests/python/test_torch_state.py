"""state_dict()/load_state_dict() of l2l.torch.LearnedOptimizer: a run saved with torch.save
and resumed in a fresh process's objects continues bit for bit as if never stopped."""
import io

import pytest
import torch

import l2l.torch
from conftest import CHECKPOINT


def make(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))


def train(model, opt, steps, seed):
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.randn(32, 8, generator=g)
        y = x.sum(1, keepdim=True).sin()
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()


@pytest.fixture(scope="module")
def rms_checkpoint(tmp_path_factory):
    """A learned optimizer with logsign-rms, whose state also holds the mean squares."""
    path = tmp_path_factory.mktemp("rms") / "rms.safetensors"
    l2l.LSTM(layers=2, hidden=20, preproc="logsign-rms", p=12, seed=3).save(path)
    return str(path)


@pytest.mark.parametrize("optimizer,lr", [(CHECKPOINT, None), ("rms", None), ("adam", 0.01)],
                         ids=["lstm", "lstm-rms", "adam"])
def test_state_dict_round_trip(optimizer, lr, rms_checkpoint):
    if optimizer == "rms":
        optimizer = rms_checkpoint
    model = make()
    opt = l2l.torch.LearnedOptimizer(model.parameters(), optimizer, lr=lr)
    train(model, opt, 5, seed=1)
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buf)
    train(model, opt, 5, seed=2)
    expected = [p.detach().clone() for p in model.parameters()]

    buf.seek(0)
    saved = torch.load(buf)
    model2 = make(seed=123)  # other initial values: all must come from the checkpoint
    opt2 = l2l.torch.LearnedOptimizer(model2.parameters(), optimizer, lr=lr)
    model2.load_state_dict(saved["model"])
    opt2.load_state_dict(saved["opt"])
    n = sum(p.numel() for p in model.parameters())
    if optimizer == rms_checkpoint:  # t, h and c (2 layers x 20 units), then v
        assert saved["opt"]["state"][0]["l2l_state"].numel() == 1 + 2 * 2 * 20 * n + n
    train(model2, opt2, 5, seed=2)
    for i, (p, e) in enumerate(zip(model2.parameters(), expected)):
        assert torch.equal(p.detach(), e), f"parameter {i} differs after resuming"

    # Without the optimizer's state the run would differ (so the test can fail).
    model3 = make(seed=123)
    opt3 = l2l.torch.LearnedOptimizer(model3.parameters(), optimizer, lr=lr)
    model3.load_state_dict(saved["model"])
    train(model3, opt3, 5, seed=2)
    assert not all(torch.equal(p.detach(), e) for p, e in zip(model3.parameters(), expected))


def test_load_state_dict_refuses_another_optimizer():
    model = make()
    opt = l2l.torch.LearnedOptimizer(model.parameters(), CHECKPOINT)
    sd = opt.state_dict()
    other = torch.nn.Linear(8, 3)
    with pytest.raises(ValueError, match=r"over 161 coordinates, this one is lstm over 27"):
        l2l.torch.LearnedOptimizer(other.parameters(), CHECKPOINT).load_state_dict(sd)
    with pytest.raises(ValueError, match="this one is adam"):
        l2l.torch.LearnedOptimizer(make().parameters(), "adam", lr=0.1).load_state_dict(sd)
    sgd = torch.optim.SGD(model.parameters(), lr=0.1).state_dict()
    with pytest.raises(ValueError, match="holds no l2l state"):
        opt.load_state_dict(sgd)
    bad = opt.state_dict()
    bad["state"][0]["l2l_state"] = bad["state"][0]["l2l_state"][:-1].clone()
    with pytest.raises(l2l.ArgumentError, match="state of"):
        opt.load_state_dict(bad)
