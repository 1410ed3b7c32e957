"""l2l: learned optimizers ("Learning to learn by gradient descent by gradient descent")
from Python, a thin ctypes layer over libl2l.so (docs/PYTHON.md).

    import l2l
    opt = l2l.Optimizer("models/mnist.safetensors", n)   # NumPy: opt.step(grad, theta)
    net = l2l.LSTM.load("models/mnist.safetensors")       # a learned optimizer's weights
    l2l.meta_train(net, task, epochs=100); net.save("mine.safetensors")
    import l2l.torch                                      # l2l.torch.LearnedOptimizer

libl2l.so is found through $L2L_LIBRARY, next to this package, in the source tree's
build/, or on the system's library path (make install); l2l.library says which.
"""
from . import _lib
from .core import (LSTM, ArgumentError, Error, FileError, FormatError, NumericError, Optimizer,
                   OutOfMemoryError, Rng, tune_grid)
from .meta import meta_train

__version__ = "0.1.0"
library = _lib.path
KINDS = tuple(_lib.OPT_KINDS[:-1])

__all__ = ["LSTM", "Optimizer", "Rng", "meta_train", "tune_grid", "Error", "ArgumentError",
           "FileError", "FormatError", "NumericError", "OutOfMemoryError", "library", "KINDS"]
