"""tune_allocator: large blocks stay in the heap (glibc), opt-out by environment."""

import os
import platform
import subprocess
import sys

import pytest

CHECK = """
import ctypes, sys
from pyrochar.allocator import tune_allocator

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
tuned = tune_allocator()
assert tune_allocator() == tuned  # idempotent
before = libc.mallinfo2().hblks  # blocks served by mmap
block = bytearray(100_000_000)
print(tuned, libc.mallinfo2().hblks - before)
"""

glibc_only = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)


def run_check(**env):
    full_env = {k: v for k, v in os.environ.items() if k != "PYROCHAR_NO_MALLOC_TUNING"}
    out = subprocess.run(
        [sys.executable, "-c", CHECK], env={**full_env, **env}, capture_output=True, text=True, check=True
    )
    tuned, new_mmaps = out.stdout.split()
    return tuned == "True", int(new_mmaps)


@glibc_only
def test_large_allocations_come_from_the_heap_once_tuned():
    assert run_check() == (True, 0)


@glibc_only
def test_environment_variable_turns_the_tuning_off():
    # untouched glibc serves a 100 MB block with mmap
    assert run_check(PYROCHAR_NO_MALLOC_TUNING="1") == (False, 1)
