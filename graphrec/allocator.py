"""Keep freed large buffers in the process heap (glibc mallopt) so hot loops do not page-fault on every batch.

Each batch allocates several (num_nodes, dim) buffers. With glibc's defaults a buffer above the mmap
threshold is mapped fresh and returned to the OS on free, so every first touch page-faults: on Gowalla that
was ~30% of a training batch and ~65% of full-ranking evaluation. Raising the mmap and trim thresholds keeps
the memory in the heap for reuse. Opt out with GRAPHREC_MALLOC_TUNING=0; a no-op off glibc.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_done = False


def tune_allocator() -> bool:
    """Raise glibc's mmap/trim thresholds once per process; True if applied."""
    global _done
    if _done or os.environ.get("GRAPHREC_MALLOC_TUNING", "1") == "0":
        return _done
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, 1 << 30) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, (1 << 31) - 1) == 1
    except (OSError, AttributeError):
        ok = False
    _done = ok
    return ok
