"""pyrochar: neuro-symbolic generative models of handwritten characters on Pyro.

Implements Feinman & Lake (2020), "Generating new concepts with hybrid
neuro-symbolic models". The main entry points::

    from pyrochar import load_pretrained, load_checkpoint, GenerateCharacter
"""

__version__ = "0.1.0"

_LAZY = {
    "load_pretrained": "pyrochar.checkpoint",
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


__all__ = ["__version__", *_LAZY]
