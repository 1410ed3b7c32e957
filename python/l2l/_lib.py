"""ctypes declarations of include/l2l.h: the structs the binding passes by pointer and the
prototypes of the functions it calls. Nothing here allocates or owns anything.

The struct layouts must match the header's; tests/python/test_abi.py compiles a C program
that prints sizeof and offsetof for each and compares them with these.
"""
import ctypes
import ctypes.util
import os

_HERE = os.path.dirname(os.path.abspath(__file__))
LIBRARY_NAME = "libl2l.so"

# ------------------------------------------------------------------ structs

c_float_p = ctypes.POINTER(ctypes.c_float)


class Error(ctypes.Structure):
    _fields_ = [("status", ctypes.c_int), ("msg", ctypes.c_char * 1024)]


class Rng(ctypes.Structure):
    _fields_ = [("s", ctypes.c_uint64 * 4)]


Rng_p = ctypes.POINTER(Rng)

# l2l_task's callbacks.
SAMPLE_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, Rng_p, c_float_p)
LOSS_GRAD_FN = ctypes.CFUNCTYPE(ctypes.c_double, ctypes.c_void_p, c_float_p, c_float_p, Rng_p)
DESTROY_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


MAX_GROUPS = 4
GROUP_NAME = 16


class Task(ctypes.Structure):
    _fields_ = [
        ("n", ctypes.c_size_t),
        ("grad_scale", ctypes.c_float),
        ("ctx", ctypes.c_void_p),
        ("sample", SAMPLE_FN),
        ("loss_grad", LOSS_GRAD_FN),
        ("destroy", DESTROY_FN),
        ("name", ctypes.c_char * 64),
        ("n_groups", ctypes.c_int),
        ("group", ctypes.POINTER(ctypes.c_uint8)),
        ("group_names", (ctypes.c_char * GROUP_NAME) * MAX_GROUPS),
    ]


MAX_LAYERS = 4
MAX_META = 64


class LstmConfig(ctypes.Structure):
    _fields_ = [
        ("layers", ctypes.c_int),
        ("hidden", ctypes.c_int),
        ("preproc", ctypes.c_int),
        ("p", ctypes.c_float),
        ("scale", ctypes.c_float),
        ("groups", ctypes.c_int),
        ("group_names", (ctypes.c_char * GROUP_NAME) * MAX_GROUPS),
    ]


class _LayerView(ctypes.Structure):
    _fields_ = [
        ("w_ih", c_float_p),
        ("w_hh", c_float_p),
        ("b_ih", c_float_p),
        ("b_hh", c_float_p),
        ("in_", ctypes.c_int),
    ]


class LstmView(ctypes.Structure):
    _fields_ = [("layer", _LayerView * MAX_LAYERS), ("w_out", c_float_p), ("b_out", c_float_p)]


class Lstm(ctypes.Structure):
    _fields_ = [
        ("cfg", LstmConfig),
        ("n_in", ctypes.c_int),
        ("n_params", ctypes.c_size_t),
        ("phi", c_float_p),
        ("w", LstmView * MAX_GROUPS),
    ]


Lstm_p = ctypes.POINTER(Lstm)


class OptSpec(ctypes.Structure):
    _fields_ = [("kind", ctypes.c_int), ("lr", ctypes.c_float), ("net", Lstm_p)]


class Optimizer(ctypes.Structure):
    _fields_ = [("spec", OptSpec), ("n", ctypes.c_size_t), ("state", ctypes.c_void_p)]


Optimizer_p = ctypes.POINTER(Optimizer)


class _EsConfig(ctypes.Structure):
    _fields_ = [("pairs", ctypes.c_int), ("sigma", ctypes.c_float)]


class TrainConfig(ctypes.Structure):
    _fields_ = [
        ("epochs", ctypes.c_int),
        ("steps", ctypes.c_int),
        ("unroll", ctypes.c_int),
        ("lr", ctypes.c_float),
        ("clip", ctypes.c_float),
        ("eval_every", ctypes.c_int),
        ("n_valid", ctypes.c_int),
        ("seed", ctypes.c_uint64),
        ("objective", ctypes.c_int),
        ("selection", ctypes.c_int),
        ("estimator", ctypes.c_int),
        ("es", _EsConfig),
        ("teacher", OptSpec),
        ("comm", ctypes.c_void_p),  # const l2l_comm *: NULL, one process
    ]


class TrainProgress(ctypes.Structure):
    _fields_ = [
        ("epoch", ctypes.c_int),
        ("train_loss", ctypes.c_double),
        ("grad_norm", ctypes.c_double),
        ("valid_loss", ctypes.c_double),
        ("best_valid", ctypes.c_double),
        ("best_epoch", ctypes.c_int),
        ("seconds", ctypes.c_double),
        ("rng", Rng),
        ("state", ctypes.c_void_p),  # const l2l_train_state *, not read here
    ]


TRAIN_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(TrainProgress), ctypes.c_void_p)


class KV(ctypes.Structure):
    _fields_ = [("key", ctypes.c_char * 64), ("value", ctypes.c_char * 256)]


# Enum values (l2l.h).
STATUS_NAMES = ["OK", "ARG", "IO", "FORMAT", "NOMEM", "NUMERIC"]
OBJECTIVES = ["sum", "log"]
SELECTIONS = ["mean", "final"]
ESTIMATORS = ["tbptt", "es", "imitate", "pes"]
STREAMS = {"train": 1, "valid": 2, "test": 3, "init": 4, "es": 5}

# ---------------------------------------------------------------- the library


def _candidates():
    """Where libl2l.so is looked for, in order: $L2L_LIBRARY (the file, or a folder holding
    it), next to this package, the source tree's build/ (when the package is used from the
    repository), then the system's search path and /usr/local/lib (make install)."""
    env = os.environ.get("L2L_LIBRARY")
    if env:
        yield os.path.join(env, LIBRARY_NAME) if os.path.isdir(env) else env
        return  # an explicit choice is never silently replaced by another library
    yield os.path.join(_HERE, LIBRARY_NAME)
    tree = os.path.dirname(os.path.dirname(_HERE))
    if os.path.exists(os.path.join(tree, "include", "l2l.h")):  # python/l2l in the source tree
        yield os.path.join(tree, "build", LIBRARY_NAME)
    found = ctypes.util.find_library("l2l")
    if found:
        yield found
    yield os.path.join("/usr/local/lib", LIBRARY_NAME)


def _load():
    tried = []
    for path in _candidates():
        if os.sep in path and not os.path.exists(path):
            tried.append(f"{path} (no such file)")
            continue
        try:
            return ctypes.CDLL(path), os.path.abspath(path) if os.sep in path else path
        except OSError as e:
            tried.append(f"{path} ({e})")
    raise ImportError(
        "l2l: cannot load libl2l.so; tried:\n  " + "\n  ".join(tried) +
        "\nBuild it (make build/libl2l.so), install it (make install), or set L2L_LIBRARY to "
        "its path.")


lib, path = _load()

_P = ctypes.c_void_p
_prototypes = {
    "l2l_status_name": (ctypes.c_char_p, [ctypes.c_int]),
    "l2l_rng_seed": (None, [Rng_p, ctypes.c_uint64, ctypes.c_uint64]),
    "l2l_rng_u64": (ctypes.c_uint64, [Rng_p]),
    "l2l_rng_uniform": (ctypes.c_double, [Rng_p]),
    "l2l_rng_normal": (ctypes.c_double, [Rng_p]),
    "l2l_rng_below": (ctypes.c_uint64, [Rng_p, ctypes.c_uint64]),
    "l2l_lstm_config_check": (ctypes.c_int, [ctypes.POINTER(LstmConfig), ctypes.POINTER(Error)]),
    "l2l_lstm_create": (ctypes.c_int, [Lstm_p, ctypes.POINTER(LstmConfig), ctypes.POINTER(Error)]),
    "l2l_lstm_free": (None, [Lstm_p]),
    "l2l_lstm_init": (None, [Lstm_p, Rng_p]),
    "l2l_checkpoint_save": (ctypes.c_int, [ctypes.c_char_p, Lstm_p, ctypes.POINTER(KV), ctypes.c_int,
                                           ctypes.POINTER(Error)]),
    "l2l_checkpoint_load": (ctypes.c_int, [ctypes.c_char_p, Lstm_p, ctypes.POINTER(KV),
                                           ctypes.POINTER(ctypes.c_int), ctypes.POINTER(Error)]),
    "l2l_opt_kind_name": (ctypes.c_char_p, [ctypes.c_int]),
    "l2l_opt_kind_parse": (ctypes.c_int, [ctypes.c_char_p]),
    "l2l_preproc_name": (ctypes.c_char_p, [ctypes.c_int]),
    "l2l_optimizer_create": (ctypes.c_int, [Optimizer_p, ctypes.POINTER(OptSpec), ctypes.c_size_t,
                                            ctypes.POINTER(Error)]),
    "l2l_optimizer_create_groups": (ctypes.c_int, [Optimizer_p, ctypes.POINTER(OptSpec), ctypes.c_size_t,
                                                   ctypes.POINTER(ctypes.c_uint8), ctypes.POINTER(Error)]),
    "l2l_optimizer_reset": (None, [Optimizer_p]),
    # The step's pointers are passed as plain addresses (c_void_p): the cheapest conversion.
    "l2l_optimizer_step": (None, [Optimizer_p, _P, _P]),
    "l2l_optimizer_free": (None, [Optimizer_p]),
    "l2l_optimizer_state_size": (ctypes.c_size_t, [Optimizer_p]),
    "l2l_optimizer_state_get": (None, [Optimizer_p, _P]),
    "l2l_optimizer_state_set": (ctypes.c_int, [Optimizer_p, _P, ctypes.c_size_t, ctypes.POINTER(Error)]),
    "l2l_train_config_default": (None, [ctypes.POINTER(TrainConfig)]),
    "l2l_meta_train": (ctypes.c_int, [Lstm_p, ctypes.POINTER(Task), ctypes.POINTER(TrainConfig),
                                      TRAIN_CALLBACK, ctypes.c_void_p, ctypes.POINTER(Error)]),
    "l2l_tune_grid": (ctypes.c_int, [c_float_p, ctypes.c_int]),
}
for _name, (_res, _args) in _prototypes.items():
    try:
        _f = getattr(lib, _name)
    except AttributeError:
        raise ImportError(f"l2l: {path} has no function {_name}: it is older than this binding; "
                          "rebuild the library from the same source tree") from None
    _f.restype, _f.argtypes = _res, _args


def _names(name_of):
    """An enum's names by value, from the library's function that names them."""
    names = []
    while (name := name_of(len(names)).decode()) != "?":
        names.append(name)
    return names


# The optimizer kinds and preprocessings by enum value, named as the library names them.
OPT_KINDS = _names(lib.l2l_opt_kind_name)
OPT_KIND_LSTM = OPT_KINDS.index("lstm")
PREPROCS = _names(lib.l2l_preproc_name)
