"""``pyrochar serve``: the drawing pad, a local web app over the project's models.

:func:`create_app` builds the FastAPI application (:mod:`pyrochar.serve.app`); the
command runs it with uvicorn. Needs the ``web`` extra (``pip install "pyrochar[web]"``).
docs/serve.md documents the API, collect mode and the security notes.
"""

from __future__ import annotations


def create_app(*args, **kwargs):
    """The drawing pad's FastAPI app; see :func:`pyrochar.serve.app.create_app`."""
    from .app import create_app as build

    return build(*args, **kwargs)


__all__ = ["create_app"]
