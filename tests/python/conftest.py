"""The binding's tests run on the package in python/ (not an installed copy) and the library
that `make` built: $L2L_LIBRARY if set, else build/libl2l.so. The C helpers beside the tests
(ref_steps.c, abi.c) are compiled once per session against the same header and library."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "python"))
os.environ.setdefault("L2L_LIBRARY", os.path.join(ROOT, "build", "libl2l.so"))

import l2l  # noqa: E402  (after the path is set)

CHECKPOINT = os.path.join(ROOT, "models", "mnist.safetensors")


@pytest.fixture(scope="session")
def c_helper(tmp_path_factory):
    """compile(name) -> the path of tests/python/NAME.c built against libl2l.so."""
    out = tmp_path_factory.mktemp("c")
    libdir = os.path.dirname(l2l.library)
    built = {}

    def compile(name):
        if name not in built:
            exe = str(out / name)
            cmd = [os.environ.get("CC", "cc"), "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror",
                   "-I", os.path.join(ROOT, "include"), os.path.join(ROOT, "tests", "python", name + ".c"),
                   "-o", exe, "-L", libdir, "-ll2l", "-Wl,-rpath," + libdir]
            r = subprocess.run(cmd, capture_output=True, text=True)
            assert r.returncode == 0, f"compiling {name}.c failed:\n{' '.join(cmd)}\n{r.stderr}"
            built[name] = exe
        return built[name]

    return compile
