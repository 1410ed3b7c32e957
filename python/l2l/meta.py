"""Meta-training a learned optimizer on a task family written in Python (for example with
PyTorch autograd), through l2l_meta_train and the two callbacks of l2l_task.

A task is any object with
    n                       the number of coordinates N (int)
    sample(rng) -> theta0   draws a new problem and returns its starting point (N values)
    loss_grad(theta) -> (loss, grad)   or   loss_grad(theta, rng) -> (loss, grad)
                            the loss at theta (a float) and its gradient (N values)
and optionally grad_scale (default 1; see l2l_task in l2l.h) and name.
`rng` is an l2l.Rng valid during the call: rng.seed() gives an integer to seed torch or
NumPy from, so that runs are reproducible from the training seed. theta is a float32 NumPy
array of shape (N,) that the library owns: read it (torch.from_numpy(theta) shares it)
but do not keep it after the call. The values returned may be NumPy arrays, torch tensors
(CPU) or sequences; they are converted to float32.

An exception raised by a callback is not lost: the callback stores it and returns NaN (and
fills theta0 or grad with NaN), the library stops with a numeric error (or, if it was
validating, at the end of the epoch), and meta_train raises the stored exception.
"""
import ctypes
import inspect
import math

import numpy as np

from . import _lib
from .core import LSTM, Rng, _check, _error_of


def _as_float32(value, n, what):
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach()
        if value.device.type != "cpu":
            raise TypeError(f"{what} is on {value.device}; return a CPU tensor (.cpu())")
        value = value.numpy()
    a = np.asarray(value, dtype=np.float32).reshape(-1)
    if a.size != n:
        raise ValueError(f"{what} has {a.size} values, the task has n = {n}")
    return a


class _Callbacks:
    """The l2l_task callbacks around a Python task; the first exception is kept."""

    def __init__(self, task, n):
        self.task, self.n = task, n
        self.error = None
        self.pass_rng = _takes_two(task.loss_grad)

    def sample(self, ctx, rng, theta0):
        out = np.ctypeslib.as_array(theta0, shape=(self.n,))
        if self.error is not None:
            out.fill(np.nan)
            return
        try:
            out[:] = _as_float32(self.task.sample(Rng(_ptr=rng)), self.n, "sample(rng)'s theta0")
        except BaseException as e:  # KeyboardInterrupt too: the library must stop
            self.error = e
            out.fill(np.nan)

    def loss_grad(self, ctx, theta, grad, rng):
        g = np.ctypeslib.as_array(grad, shape=(self.n,))
        if self.error is None:
            try:
                th = np.ctypeslib.as_array(theta, shape=(self.n,))
                r = self.task.loss_grad(th, Rng(_ptr=rng)) if self.pass_rng else self.task.loss_grad(th)
                if not (isinstance(r, tuple) and len(r) == 2):
                    raise TypeError(f"loss_grad must return (loss, grad), got {type(r).__name__}")
                loss = float(r[0])
                g[:] = _as_float32(r[1], self.n, "loss_grad's grad")
                return loss
            except BaseException as e:
                self.error = e
        g.fill(np.nan)
        return math.nan

    def progress(self, p, ctx):
        if self.error is not None:
            return 1
        p = p.contents
        rec = {k: getattr(p, k) for k in ("epoch", "train_loss", "grad_norm", "valid_loss", "best_valid",
                                         "best_epoch", "seconds")}
        self.history.append(rec)
        if self.user_cb is not None:
            try:
                return 1 if self.user_cb(rec) else 0
            except BaseException as e:
                self.error = e
                return 1
        return 0


def _takes_two(fn):
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return False
    params = [p for p in sig.parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(params) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in sig.parameters.values())


def meta_train(net, task, *, epochs, steps=100, unroll=20, lr=1e-3, clip=0.0, eval_every=50,
               n_valid=20, seed=1, objective="sum", selection="mean", estimator="tbptt",
               es_pairs=8, es_sigma=0.01, teacher=None, teacher_lr=None, callback=None):
    """Meta-trains net (an l2l.LSTM) in place on a Python task (see the module's docstring);
    on return net holds the best validated phi. The settings are l2l_train_config's (l2l.h):
    the defaults are the paper's, except that epochs must be given. callback(progress) is
    called after every epoch with a dict (epoch, train_loss, grad_norm, valid_loss,
    best_valid, best_epoch, seconds); a true return stops training. Returns the list of
    those dicts. Save the result with net.save(path): a checkpoint the CLI and C use."""
    if not isinstance(net, LSTM):
        raise TypeError(f"net must be an l2l.LSTM, got {type(net).__name__}")
    for attr in ("n", "sample", "loss_grad"):
        if not hasattr(task, attr):
            raise TypeError(f"a task needs n, sample(rng) and loss_grad(theta); {type(task).__name__} "
                            f"has no {attr}")
    n = int(task.n)
    if n < 1:
        raise ValueError(f"task.n must be at least 1, got {n}")
    for name, value, choices in (("objective", objective, _lib.OBJECTIVES),
                                 ("selection", selection, _lib.SELECTIONS),
                                 ("estimator", estimator, _lib.ESTIMATORS)):
        if value not in choices:
            raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    cfg = _lib.TrainConfig()
    _lib.lib.l2l_train_config_default(ctypes.byref(cfg))
    cfg.epochs, cfg.steps, cfg.unroll = int(epochs), int(steps), int(unroll)
    cfg.lr, cfg.clip, cfg.eval_every, cfg.n_valid = float(lr), float(clip), int(eval_every), int(n_valid)
    cfg.seed = int(seed)
    cfg.objective = _lib.OBJECTIVES.index(objective)
    cfg.selection = _lib.SELECTIONS.index(selection)
    cfg.estimator = _lib.ESTIMATORS.index(estimator)
    cfg.es.pairs, cfg.es.sigma = int(es_pairs), float(es_sigma)
    if estimator == "imitate":
        if teacher not in _lib.OPT_KINDS[:-1] or teacher_lr is None:
            raise ValueError(f"estimator 'imitate' needs teacher (one of {_lib.OPT_KINDS[:-1]}) and teacher_lr")
        cfg.teacher = _lib.OptSpec(_lib.OPT_KINDS.index(teacher), float(teacher_lr), None)

    cbs = _Callbacks(task, n)
    cbs.history, cbs.user_cb = [], callback
    # The CFUNCTYPE objects must outlive the call: held here until it returns.
    sample_fn = _lib.SAMPLE_FN(cbs.sample)
    loss_grad_fn = _lib.LOSS_GRAD_FN(cbs.loss_grad)
    progress_fn = _lib.TRAIN_CALLBACK(cbs.progress)
    ctask = _lib.Task()
    ctask.n = n
    ctask.grad_scale = float(getattr(task, "grad_scale", 1.0))
    ctask.ctx = None
    ctask.sample, ctask.loss_grad = sample_fn, loss_grad_fn
    ctask.destroy = ctypes.cast(None, _lib.DESTROY_FN)
    ctask.name = str(getattr(task, "name", type(task).__name__)).encode()[:63]
    err = _lib.Error()
    status = _lib.lib.l2l_meta_train(ctypes.byref(net._net), ctypes.byref(ctask), ctypes.byref(cfg),
                                     progress_fn, None, ctypes.byref(err))
    if cbs.error is not None:
        raise cbs.error from (_error_of(status, err) if status else None)
    _check(status, err)
    return cbs.history
