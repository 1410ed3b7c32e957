"""l2l's optimizers as a torch.optim.Optimizer.

    opt = l2l.torch.LearnedOptimizer(model.parameters(), "models/mnist.safetensors")
    loss.backward(); opt.step(); opt.zero_grad()

All parameters (of every group) are one flat float32 vector theta of N coordinates, in the
order given, and one l2l optimizer steps them: the learned optimizer is coordinatewise, so
the order changes nothing. At construction the parameters' storage moves into one flat CPU
buffer (each parameter becomes a view of its slice, with the same values), so that a step
is: gather the gradients into one flat buffer, one call of l2l_optimizer_step, which
updates theta in place. If a parameter's storage is later replaced (param.data = ...,
load_state_dict(assign=True), .to()), the step notices and copies that parameter in and out
instead, which is slower but still correct.

state_dict() carries the whole l2l state (the step count and the LSTM's h and c (and v), or the
baseline's moments) as one float32 tensor under the first parameter's state, plus N and
the kind, so that torch.save / load_state_dict checkpoint and resume a run exactly.
"""
import numpy as np
import torch

from .core import Optimizer as _NpOptimizer
from .core import _spec_of

__all__ = ["LearnedOptimizer"]


def _describe(i, p):
    return f"parameter {i} (shape {tuple(p.shape)})"


def _check_tensor(what, t, numel):
    """t must be a dense float32 CPU tensor of numel elements."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor, got {type(t).__name__}")
    if t.device.type != "cpu":
        raise TypeError(f"{what} is on device '{t.device}'; l2l steps on the CPU: move the model "
                        "to the CPU (model.cpu()) before making the optimizer")
    if t.layout != torch.strided:
        raise TypeError(f"{what} has layout {t.layout}; l2l steps dense tensors only")
    if t.dtype != torch.float32:
        raise TypeError(f"{what} is {t.dtype}; l2l steps float32 only (model.float())")
    if t.numel() != numel:
        raise ValueError(f"{what} has {t.numel()} elements, expected {numel}")


class LearnedOptimizer(torch.optim.Optimizer):
    """A torch.optim optimizer that runs an l2l optimizer on all parameters as one vector.

    params: an iterable of float32 CPU tensors or of parameter groups (dicts).
    optimizer: a checkpoint path (a learned optimizer, e.g. models/mnist.safetensors), an
      l2l.LSTM, or a hand-written kind ("sgd", "nag", "rmsprop", "adam", "nag-floor") with lr.
    A learned optimizer with one LSTM per parameter group (say "kernels" and "other", from
    `l2l train --task conv`) needs every parameter group dict to name its LSTM:
      [{"params": convs, "lstm_group": "kernels"}, {"params": rest, "lstm_group": "other"}].
    Every parameter must have a gradient at each step: the optimizer steps all N
    coordinates together (leave frozen parameters out of params)."""

    def __init__(self, params, optimizer, lr=None):
        super().__init__(params, {})
        self._params = [p for g in self.param_groups for p in g["params"]]
        if not self._params:
            raise ValueError("LearnedOptimizer got no parameters")
        if len({id(p) for p in self._params}) != len(self._params):
            raise ValueError("a parameter appears more than once in params")
        sizes = []
        for i, p in enumerate(self._params):
            _check_tensor(_describe(i, p), p, p.numel())
            sizes.append(p.numel())
        self.n = n = sum(sizes)
        _, net, _ = _spec_of(optimizer, lr)  # the learned optimizer, loaded once, or None
        self._opt = _NpOptimizer(net if net is not None else optimizer, n, lr,
                                 groups=self._group_map(net, sizes))
        self.kind = self._opt.kind
        self._theta_np = np.empty(n, np.float32)
        self._grad_np = np.empty(n, np.float32)
        self._theta = torch.from_numpy(self._theta_np)
        self._grad = torch.from_numpy(self._grad_np)
        self._theta_addr = self._theta_np.ctypes.data
        self._grad_addr = self._grad_np.ctypes.data
        # Each parameter becomes a view of its slice of theta (same values, same shape).
        self._slices, self._grad_slices, self._addr = [], [], []
        off = 0
        with torch.no_grad():
            for p, k in zip(self._params, sizes):
                view = self._theta[off:off + k].view_as(p)
                view.copy_(p)
                p.data = view
                self._slices.append(view)
                self._grad_slices.append(self._grad[off:off + k].view_as(p))
                self._addr.append(view.data_ptr())
                off += k

    def _group_map(self, net, sizes):
        """Each coordinate's LSTM from the param groups' "lstm_group", or None when the
        optimizer has no parameter groups."""
        names = net.config["groups"] if net is not None else ()
        if not names:
            return None
        index = {name: i for i, name in enumerate(names)}
        groups, k, i = np.empty(sum(sizes), np.uint8), 0, 0
        for gi, g in enumerate(self.param_groups):
            name = g.get("lstm_group")
            if name not in index:
                raise ValueError(f"parameter group {gi} names lstm_group {name!r}; this optimizer has one "
                                 f"LSTM per parameter group ({', '.join(names)}): give each parameter "
                                 f"group's dict an \"lstm_group\" naming one of them")
            for _ in g["params"]:
                groups[k:k + sizes[i]] = index[name]
                k, i = k + sizes[i], i + 1
        return groups

    def add_param_group(self, param_group):
        if hasattr(self, "_opt"):
            raise NotImplementedError("LearnedOptimizer steps one fixed vector of parameters: "
                                      "give every parameter group to the constructor")
        super().add_param_group(param_group)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        moved = []
        for i, (p, gslice) in enumerate(zip(self._params, self._grad_slices)):
            g = p.grad
            if g is None:
                raise ValueError(f"{_describe(i, p)} has no gradient; every parameter needs one at "
                                 "every step (call backward() first, or leave unused parameters out)")
            if g.dtype != torch.float32 or g.device.type != "cpu" or g.layout != torch.strided \
                    or g.numel() != gslice.numel():
                _check_tensor(f"the gradient of {_describe(i, p)}", g, gslice.numel())
            gslice.copy_(g)
            if p.data_ptr() != self._addr[i]:  # storage replaced since construction
                _check_tensor(_describe(i, p), p, gslice.numel())
                self._slices[i].copy_(p)
                moved.append(i)
        self._opt._step_ptr(self._grad_addr, self._theta_addr)
        for i in moved:
            self._params[i].copy_(self._slices[i])
        return loss

    def reset(self):
        """Zero state, for a new optimizee (the same parameters, re-initialised)."""
        self._opt.reset()

    def state_dict(self):
        first = self._params[0]
        self.state[first] = {"l2l_state": torch.from_numpy(self._opt.state),
                             "l2l_n": self.n, "l2l_kind": self.kind}
        return super().state_dict()

    def load_state_dict(self, state_dict):
        states = state_dict.get("state", {})
        entry = next((s for s in states.values() if isinstance(s, dict) and "l2l_state" in s), None)
        if entry is None:
            raise ValueError("this state_dict holds no l2l state: it does not come from "
                             "l2l.torch.LearnedOptimizer.state_dict()")
        if entry.get("l2l_n") != self.n or entry.get("l2l_kind") != self.kind:
            raise ValueError(f"the state_dict is of a {entry.get('l2l_kind')} optimizer over "
                             f"{entry.get('l2l_n')} coordinates, this one is {self.kind} over {self.n}")
        saved = entry["l2l_state"]
        if not isinstance(saved, torch.Tensor) or saved.dtype != torch.float32:
            raise TypeError("the state_dict's l2l_state must be a float32 tensor")
        super().load_state_dict(state_dict)
        self._opt.load_state(saved.detach().cpu().numpy())
