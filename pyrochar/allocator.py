"""The memory allocator setting that makes the CPU paths fast.

:func:`tune_allocator` keeps glibc's ``malloc`` from handing large blocks back to
the operating system. By default glibc serves every allocation above a threshold
(at most 32 MB) with a fresh ``mmap`` and returns it with ``munmap`` when freed.
A training or scoring step allocates and frees tensors of tens of MB many times
(a batch of 460 strokes in 64 channels at 28 x 28 is 92 MB), so each step paid
the kernel for mapping and zeroing the same memory again (system time). With
large blocks kept in the heap and the heap never trimmed, training and scoring
run faster (docs/performance.md, ``benchmarks/bench_model.py --no-malloc-tuning``).
The price: the process keeps its peak memory until it exits.

The ``pyrochar`` command calls it on start-up; Python users call it themselves
(once, anywhere before the work). ``PYROCHAR_NO_MALLOC_TUNING=1`` turns it off.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

# mallopt parameters (glibc's malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4

_tuned = False


def _glibc():
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") else None


def tune_allocator() -> bool:
    """Serve large allocations from the heap and never trim it (glibc only).

    Returns True when the setting is in effect (now or from an earlier call),
    False where it does not apply (not glibc, or ``PYROCHAR_NO_MALLOC_TUNING``
    is set). Safe to call any number of times.
    """
    global _tuned
    if _tuned:
        return True
    if os.environ.get("PYROCHAR_NO_MALLOC_TUNING"):
        return False
    libc = _glibc()
    if libc is None:
        return False
    # mallopt returns 1 on success, 0 on error
    ok = libc.mallopt(_M_MMAP_MAX, 0) == 1
    ok = ok and libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1
    _tuned = ok
    return ok
