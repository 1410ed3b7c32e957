"""A learned optimizer with one LSTM per parameter group: each group of its checkpoint loads
into PyTorch as a stack of nn.LSTMCell and an nn.Linear (docs/FORMAT.md) that computes the
updates l2l computes on that group's coordinates; LearnedOptimizer maps param groups to
LSTMs by "lstm_group"."""
import json
import math

import numpy as np
import pytest
import torch

import l2l
import l2l.torch

GROUPS = ("kernels", "other")


def read_safetensors(path):
    """(metadata, {name: tensor}) with the standard library alone (docs/FORMAT.md)."""
    b = open(path, "rb").read()
    n = int.from_bytes(b[:8], "little")
    header = json.loads(b[8:8 + n])
    data = b[8 + n:]
    tensors = {k: torch.frombuffer(bytearray(data[v["data_offsets"][0]:v["data_offsets"][1]]),
                                   dtype=torch.float32).reshape(v["shape"])
               for k, v in header.items() if k != "__metadata__"}
    return header["__metadata__"], tensors


def torch_group(meta, sd, group):
    """Group `group` of a checkpoint as PyTorch modules: cells and the output layer."""
    L, H, D = int(meta["layers"]), int(meta["hidden"]), int(meta["n_in"])
    prefix = group + "."
    mine = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
    cells = [torch.nn.LSTMCell(D if l == 0 else H, H) for l in range(L)]
    for l, c in enumerate(cells):
        c.load_state_dict({k.split(".", 1)[1]: v for k, v in mine.items() if k.startswith(f"lstm{l + 1}.")})
    out = torch.nn.Linear(H, 1)
    out.load_state_dict({"weight": mine["out.weight"], "bias": mine["out.bias"]})
    return cells, out


def torch_updates(meta, cells, out, grads):
    """The updates of `steps` steps (rows of grads) for one group's coordinates."""
    p, scale = float(meta["p"]), float(meta["scale"])
    n = grads.shape[1]
    H = int(meta["hidden"])
    state = [(torch.zeros(n, H), torch.zeros(n, H)) for _ in cells]
    ups = []
    with torch.no_grad():
        for g in grads:
            big = g.abs() >= math.exp(-p)
            x = torch.stack([torch.where(big, g.abs().clamp_min(1e-38).log() / p, torch.tensor(-1.0)),
                             torch.where(big, g.sign(), math.exp(p) * g)], 1)
            for l, c in enumerate(cells):
                state[l] = c(x, state[l])
                x = state[l][0]
            ups.append(scale * out(x)[:, 0])
    return torch.stack(ups)


def test_each_group_loads_into_pytorch(tmp_path):
    net = l2l.LSTM(layers=2, hidden=8, seed=3, groups=GROUPS)
    assert net.config["groups"] == GROUPS
    path = tmp_path / "grouped.safetensors"
    net.save(path)
    meta, sd = read_safetensors(path)
    assert meta["groups"] == "kernels,other"
    assert len(sd) == 2 * 10 and "other.lstm2.weight_hh" in sd

    rng = np.random.default_rng(0)
    n, steps = 150, 4
    groups = np.array([0] * 40 + [1] * 70 + [0] * 40)
    grads = (rng.standard_normal((steps, n)) * np.exp(-8 * rng.random((steps, n)))).astype(np.float32)
    opt = l2l.Optimizer(net, n, groups=groups)
    found = np.empty((steps, n), np.float32)
    for t in range(steps):
        theta = np.zeros(n, np.float32)
        opt.step(grads[t], theta)
        found[t] = theta
    for gi, name in enumerate(GROUPS):
        cells, out = torch_group(meta, sd, name)
        cols = np.flatnonzero(groups == gi)
        expected = torch_updates(meta, cells, out, torch.from_numpy(grads[:, cols])).numpy()
        np.testing.assert_allclose(found[:, cols], expected, rtol=1e-4, atol=1e-6,
                                   err_msg=f"group {name}: l2l and PyTorch's LSTMCell stack differ")
    # The other group's weights give other updates (the check can fail).
    cells, out = torch_group(meta, sd, "other")
    cols = np.flatnonzero(groups == 0)
    wrong = torch_updates(meta, cells, out, torch.from_numpy(grads[:, cols])).numpy()
    assert not np.allclose(found[:, cols], wrong, rtol=1e-4, atol=1e-6)


def test_groups_must_be_given():
    net = l2l.LSTM(layers=1, hidden=4, groups=GROUPS)
    with pytest.raises(l2l.ArgumentError, match="not told which coordinate"):
        l2l.Optimizer(net, 10)
    with pytest.raises(l2l.ArgumentError, match="coordinate 3 is in parameter group 2"):
        l2l.Optimizer(net, 5, groups=[0, 0, 1, 2, 1])
    with pytest.raises(ValueError, match="groups must be 5 integers"):
        l2l.Optimizer(net, 5, groups=[0, 1])


def test_learned_optimizer_maps_param_groups():
    net = l2l.LSTM(layers=2, hidden=8, seed=4, groups=GROUPS)
    torch.manual_seed(0)
    conv, fc = torch.nn.Conv2d(1, 2, 3), torch.nn.Linear(8, 3)
    params = [{"params": list(fc.parameters()), "lstm_group": "other"},
              {"params": list(conv.parameters()), "lstm_group": "kernels"}]
    opt = l2l.torch.LearnedOptimizer(params, net)
    grads = [torch.randn_like(p) * 0.01 for g in params for p in g["params"]]
    before = [p.detach().clone() for g in params for p in g["params"]]
    for p, g in zip([p for g in params for p in g["params"]], grads):
        p.grad = g.clone()
    opt.step()
    after = [p.detach().clone() for g in params for p in g["params"]]
    # The same step by hand: the flat vector in param-group order and its group map.
    flat_g = torch.cat([g.reshape(-1) for g in grads]).numpy()
    sizes = [p.numel() for g in params for p in g["params"]]
    owners = [0 if g["lstm_group"] == "kernels" else 1 for g in params for _ in g["params"]]
    gmap = np.concatenate([np.full(k, o) for k, o in zip(sizes, owners)])
    theta = torch.cat([b.reshape(-1) for b in before]).numpy().copy()
    l2l.Optimizer(net, theta.size, groups=gmap).step(flat_g, theta)
    assert np.array_equal(torch.cat([a.reshape(-1) for a in after]).numpy(), theta)

    with pytest.raises(ValueError, match="names lstm_group None"):
        l2l.torch.LearnedOptimizer(conv.parameters(), net)
