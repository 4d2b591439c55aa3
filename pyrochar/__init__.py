"""pyrochar: neuro-symbolic generative models of handwritten characters on Pyro.

Implements Feinman & Lake (2020), "Generating new concepts with hybrid
neuro-symbolic models". The short API (:mod:`pyrochar.api`), the CLI's verbs::

    import pyrochar

    model = pyrochar.load_pretrained("full-ns")           # or hlstm, baseline, bpl
    drawings = pyrochar.load_drawings("tests/data/omniglot")  # files, folders, lists
    scores = pyrochar.score(model, drawings)              # per-drawing NLL + breakdown
    new = pyrochar.sample(model, 9, temperature=0.5, seed=0)
    filled = pyrochar.complete(model, drawings[0], keep_strokes=1, n=4)

and the building blocks: ``load_checkpoint``, ``GenerateCharacter``,
``CharacterBatch``, ``prepare_dataset``, ``load_omniglot``.
"""

import sys
import types

__version__ = "0.1.0"

_LAZY = {
    "load_pretrained": "pyrochar.api",
    "load_drawings": "pyrochar.api",
    "score": "pyrochar.api",
    "sample": "pyrochar.api",
    "complete": "pyrochar.api",
    "parse": "pyrochar.image.parse",
    "exemplars": "pyrochar.image.exemplars",
    "classify": "pyrochar.oneshot.classify",
    "load_checkpoint": "pyrochar.checkpoint",
    "save_checkpoint": "pyrochar.checkpoint",
    "GenerateCharacter": "pyrochar.models",
    "FullNSConfig": "pyrochar.models",
    "CharacterBatch": "pyrochar.models.batch",
    "prepare_dataset": "pyrochar.data.prepare",
    "load_omniglot": "pyrochar.data.omniglot",
}


def __getattr__(name):  # lazy, so that `import pyrochar` (and the CLI's --help) stays fast
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pyrochar' has no attribute {name!r}")


class _Package(types.ModuleType):
    """The package module: importing the submodule ``pyrochar.complete`` must not
    replace the function ``pyrochar.complete`` (Python binds a submodule to its
    parent's attribute of the same name; the submodule stays importable by name)."""

    def __setattr__(self, name, value):
        if name in _LAZY and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package

__all__ = ["__version__", *_LAZY]
