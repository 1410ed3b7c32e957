"""The ctypes structs of python/l2l/_lib.py have the header's sizes and field offsets: a C
program compiled against include/l2l.h prints them (tests/python/abi.c)."""
import ctypes
import subprocess

from l2l import _lib

MIRRORS = {
    "l2l_error": _lib.Error, "l2l_rng": _lib.Rng, "l2l_task": _lib.Task,
    "l2l_lstm_config": _lib.LstmConfig, "l2l_lstm_view": _lib.LstmView, "l2l_lstm": _lib.Lstm,
    "l2l_opt_spec": _lib.OptSpec, "l2l_optimizer": _lib.Optimizer,
    "l2l_train_config": _lib.TrainConfig, "l2l_train_progress": _lib.TrainProgress, "l2l_kv": _lib.KV,
}


def test_struct_layouts_match_the_header(c_helper):
    out = subprocess.run([c_helper("abi")], capture_output=True, text=True, check=True).stdout
    bad = []
    for line in out.splitlines():
        name, value = line.split()
        value = int(value)
        if "." in name:
            struct, field = name.split(".")
            found = getattr(MIRRORS[struct], field).offset
            what = f"offsetof({struct}, {field})"
        else:
            found = ctypes.sizeof(MIRRORS[name])
            what = f"sizeof({name})"
        if found != value:
            bad.append(f"{what}: header {value}, python/l2l/_lib.py {found}")
    assert not bad, "the ctypes mirrors no longer match include/l2l.h:\n" + "\n".join(bad)
