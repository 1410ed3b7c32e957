"""The library's objects in Python: errors, the RNG, a learned optimizer's weights (LSTM)
and the NumPy-level optimizer. Every object owns its C struct and frees it when collected."""
import ctypes
import os

import numpy as np

from . import _lib

# ------------------------------------------------------------------ errors


class Error(Exception):
    """A status the library returned, with its message (what was expected, what was found,
    what to do). `status` is the status's name: "ARG", "IO", "FORMAT", "NOMEM", "NUMERIC"."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


class ArgumentError(Error, ValueError):
    pass


class FileError(Error, OSError):
    pass


class FormatError(Error, ValueError):
    pass


class NumericError(Error, ArithmeticError):
    pass


class OutOfMemoryError(Error, MemoryError):
    pass


_ERRORS = {1: ArgumentError, 2: FileError, 3: FormatError, 4: OutOfMemoryError, 5: NumericError}


def _error_of(status, err):
    """The exception for a status and the message the library wrote."""
    name = _lib.STATUS_NAMES[status] if 0 <= status < len(_lib.STATUS_NAMES) else str(status)
    return _ERRORS.get(status, Error)(name, err.msg.decode("utf-8", "replace"))


def _check(status, err):
    if status:
        raise _error_of(status, err)


# ---------------------------------------------------------------------- rng


class Rng:
    """l2l's xoshiro256** generator. Either its own state (`Rng(seed, stream)`) or, inside a
    task's callbacks, a view of the library's generator that is valid during the call only."""

    def __init__(self, seed=1, stream=0, _ptr=None):
        if _ptr is None:
            self._own = _lib.Rng()
            self._ptr = ctypes.pointer(self._own)
            _lib.lib.l2l_rng_seed(self._ptr, int(seed), int(stream))
        else:
            self._ptr = _ptr

    def u64(self):
        """A uniform 64-bit integer."""
        return _lib.lib.l2l_rng_u64(self._ptr)

    def seed(self):
        """A 63-bit integer to seed another generator (torch.Generator().manual_seed,
        numpy.random.default_rng) from this one."""
        return _lib.lib.l2l_rng_u64(self._ptr) >> 1

    def uniform(self):
        return _lib.lib.l2l_rng_uniform(self._ptr)

    def normal(self):
        return _lib.lib.l2l_rng_normal(self._ptr)

    def below(self, bound):
        return _lib.lib.l2l_rng_below(self._ptr, int(bound))


# -------------------------------------------------------------------- LSTM


class LSTM:
    """A learned optimizer's weights phi and architecture (l2l_lstm).

    LSTM.load(path) reads a checkpoint; LSTM(layers=2, hidden=20, preproc="logsign", p=10,
    scale=0.1, seed=1) makes a new one with the authors' initialisation (the seed's
    "init" stream, as `l2l train` does); preproc is "none", "logsign" or "logsign-rms".
    groups=("kernels", "other") makes one LSTM per parameter group (config["groups"]
    names them; () for one shared LSTM). `phi` is a float32 NumPy view of the weights,
    the groups' one after the other."""

    def __init__(self, layers=2, hidden=20, preproc="logsign", p=10.0, scale=0.1, seed=1, *,
                 groups=(), _load=None):
        self._net = _lib.Lstm()
        self.metadata = {}
        err = _lib.Error()
        if _load is not None:
            meta = (_lib.KV * _lib.MAX_META)()
            n_meta = ctypes.c_int(0)
            status = _lib.lib.l2l_checkpoint_load(os.fsencode(_load), ctypes.byref(self._net), meta,
                                                  ctypes.byref(n_meta), ctypes.byref(err))
            _check(status, err)
            self.metadata = {meta[i].key.decode(): meta[i].value.decode() for i in range(n_meta.value)}
            return
        if preproc not in _lib.PREPROCS:
            raise ValueError(f"preproc must be one of {_lib.PREPROCS}, got {preproc!r}")
        groups = [str(g).encode() for g in groups]
        if len(groups) == 1 or len(groups) > _lib.MAX_GROUPS:
            raise ValueError(f"groups names 2 to {_lib.MAX_GROUPS} parameter groups (or none), got {len(groups)}")
        cfg = _lib.LstmConfig(int(layers), int(hidden), _lib.PREPROCS.index(preproc), float(p),
                              float(scale), len(groups))
        for i, g in enumerate(groups):
            if len(g) >= _lib.GROUP_NAME:
                raise ValueError(f"group name {g!r} is longer than {_lib.GROUP_NAME - 1} bytes")
            cfg.group_names[i].value = g
        _check(_lib.lib.l2l_lstm_create(ctypes.byref(self._net), ctypes.byref(cfg), ctypes.byref(err)), err)
        rng = Rng(seed, _lib.STREAMS["init"])
        _lib.lib.l2l_lstm_init(ctypes.byref(self._net), rng._ptr)

    @classmethod
    def load(cls, path):
        """Reads a checkpoint (safetensors, docs/FORMAT.md); its __metadata__ goes to .metadata."""
        if not isinstance(path, (str, bytes, os.PathLike)):
            raise TypeError(f"a checkpoint path must be a str or os.PathLike, got {type(path).__name__}")
        return cls(_load=path)

    def save(self, path, metadata=None):
        """Writes a checkpoint atomically, with extra string metadata (key -> value)."""
        metadata = dict(metadata or {})
        if len(metadata) > _lib.MAX_META - 10:
            raise ValueError(f"at most {_lib.MAX_META - 10} metadata pairs, got {len(metadata)}")
        kv = (_lib.KV * max(1, len(metadata)))()
        for i, (k, v) in enumerate(metadata.items()):
            k, v = str(k).encode(), str(v).encode()
            if len(k) >= 64 or len(v) >= 256:
                raise ValueError(f"metadata key {k!r}: keys hold at most 63 bytes, values 255")
            kv[i].key, kv[i].value = k, v
        err = _lib.Error()
        _check(_lib.lib.l2l_checkpoint_save(os.fsencode(path), ctypes.byref(self._net), kv, len(metadata),
                                            ctypes.byref(err)), err)

    @property
    def config(self):
        c = self._net.cfg
        groups = tuple(c.group_names[i].value.decode() for i in range(c.groups)) if c.groups > 1 else ()
        return {"layers": c.layers, "hidden": c.hidden, "preproc": _lib.PREPROCS[c.preproc],
                "p": c.p, "scale": c.scale, "groups": groups}

    @property
    def n_params(self):
        return self._net.n_params

    @property
    def phi(self):
        if not self._net.phi:
            raise ValueError("this LSTM holds no weights")
        buf = (ctypes.c_float * self._net.n_params).from_address(ctypes.addressof(self._net.phi.contents))
        buf._owner = self  # the view keeps the weights alive
        return np.frombuffer(buf, np.float32)

    def __repr__(self):
        return f"l2l.LSTM({self.config}, {self.n_params} weights)"

    def __del__(self):
        net = getattr(self, "_net", None)
        if net is not None and _lib is not None and _lib.lib is not None:
            _lib.lib.l2l_lstm_free(ctypes.byref(net))


# --------------------------------------------------------------- optimizer


def _spec_of(optimizer, lr):
    """(OptSpec, the LSTM it points to or None, a short name) for a kind name, a checkpoint
    path or an LSTM."""
    if isinstance(optimizer, LSTM):
        if lr is not None:
            raise ValueError("a learned optimizer has no learning rate: drop lr")
        return _lib.OptSpec(_lib.OPT_KIND_LSTM, 0.0, ctypes.pointer(optimizer._net)), optimizer, "lstm"
    if not isinstance(optimizer, (str, os.PathLike)):
        raise TypeError("optimizer must be a checkpoint path, a kind name "
                        f"({', '.join(_lib.OPT_KINDS[:-1])}) or an l2l.LSTM; got {type(optimizer).__name__}")
    kind = _lib.lib.l2l_opt_kind_parse(os.fsencode(optimizer)) if isinstance(optimizer, str) else -1
    if kind >= 0:
        if lr is None:
            raise ValueError(f"the hand-written optimizer {optimizer!r} needs a learning rate: give lr")
        return _lib.OptSpec(kind, float(lr), None), None, optimizer
    if isinstance(optimizer, str) and os.sep not in optimizer and not os.path.exists(optimizer) \
            and not optimizer.endswith(".safetensors"):
        raise ValueError(f"{optimizer!r} is neither an optimizer kind ({', '.join(_lib.OPT_KINDS[:-1])}) "
                         "nor an existing checkpoint file")
    if lr is not None:
        raise ValueError("a learned optimizer has no learning rate: drop lr")
    net = LSTM.load(optimizer)
    return _lib.OptSpec(_lib.OPT_KIND_LSTM, 0.0, ctypes.pointer(net._net)), net, "lstm"


def _check_array(name, a, n, writable=False):
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray of float32, got {type(a).__name__}")
    if a.dtype != np.float32:
        raise TypeError(f"{name} must be float32, got {a.dtype}; convert it with .astype(numpy.float32)"
                        + (" and copy the result back" if writable else ""))
    if a.size != n:
        raise ValueError(f"{name} has {a.size} elements, the optimizer was made for {n}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous (numpy.ascontiguousarray)")
    if writable and not a.flags.writeable:
        raise ValueError(f"{name} is read-only; the optimizer updates it in place")


class Optimizer:
    """A learned or hand-written optimizer over n coordinates, on float32 NumPy arrays.

    Optimizer("models/mnist.safetensors", n) or Optimizer(l2l.LSTM(...), n) for a learned
    one; Optimizer("adam", n, lr=1e-3) for a baseline (sgd, nag, rmsprop, adam, nag-floor).
    step(grad, theta) adds the update to theta in place; `state` / `load_state` read and
    write the whole state (l2l_optimizer_state_get/_set: [t, then the kind's buffers]).
    A learned optimizer with parameter groups needs `groups`: n integers, coordinate i's
    group, an index into its LSTM's config["groups"]; other optimizers ignore it."""

    def __init__(self, optimizer, n, lr=None, groups=None):
        self._opt = None
        n = int(n)
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        spec, self.net, self.kind = _spec_of(optimizer, lr)
        self.n = n
        group_ptr = None
        if groups is not None:
            g = np.asarray(groups)
            if g.shape != (n,) or g.dtype.kind not in "iu" or (g.size and (g.min() < 0 or g.max() > 255)):
                raise ValueError(f"groups must be {n} integers in [0, 255] (one per coordinate), got "
                                 f"shape {g.shape} of {g.dtype}")
            self._groups = np.ascontiguousarray(g, np.uint8)  # read by the create call only
            group_ptr = self._groups.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8))
        opt = _lib.Optimizer()
        err = _lib.Error()
        _check(_lib.lib.l2l_optimizer_create_groups(ctypes.byref(opt), ctypes.byref(spec), n, group_ptr,
                                                    ctypes.byref(err)), err)
        self._opt = opt
        self._ref = ctypes.byref(opt)
        self._step = _lib.lib.l2l_optimizer_step
        self.state_size = _lib.lib.l2l_optimizer_state_size(self._ref)

    def step(self, grad, theta):
        """theta += the optimizer's update from grad; both float32 arrays of n elements."""
        _check_array("grad", grad, self.n)
        _check_array("theta", theta, self.n, writable=True)
        self._step(self._ref, grad.ctypes.data, theta.ctypes.data)

    def _step_ptr(self, grad_addr, theta_addr):
        """The step on two addresses of n float32 each, already checked by the caller."""
        self._step(self._ref, grad_addr, theta_addr)

    def reset(self):
        """Zero state, for a new optimizee."""
        _lib.lib.l2l_optimizer_reset(self._ref)

    @property
    def state(self):
        """A copy of the state: float32 (state_size), [0] the step count."""
        out = np.empty(self.state_size, np.float32)
        _lib.lib.l2l_optimizer_state_get(self._ref, out.ctypes.data)
        return out

    def load_state(self, state):
        """Restores a state read from `state` of an optimizer of the same kind and size."""
        state = np.asarray(state)
        if state.dtype != np.float32:
            raise TypeError(f"a state is float32, got {state.dtype}")
        state = np.ascontiguousarray(state.reshape(-1))
        err = _lib.Error()
        _check(_lib.lib.l2l_optimizer_state_set(self._ref, state.ctypes.data, state.size, ctypes.byref(err)), err)

    def __repr__(self):
        return f"l2l.Optimizer({self.kind!r}, n={self.n})"

    def __del__(self):
        if getattr(self, "_opt", None) is not None and _lib is not None and _lib.lib is not None:
            _lib.lib.l2l_optimizer_free(ctypes.byref(self._opt))
            self._opt = None


def tune_grid():
    """The learning-rate grid of `l2l tune`: 10^(k/2), k = -10..3 (1e-5 .. 31.6), as floats."""
    buf = (ctypes.c_float * 32)()
    n = _lib.lib.l2l_tune_grid(buf, 32)
    return [float(buf[i]) for i in range(n)]
