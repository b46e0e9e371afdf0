"""Large-buffer memory policy: keep freed (nodes x dim) buffers in the heap, back bigger ones with huge pages.

Each batch allocates several (num_nodes, dim) buffers. With glibc's defaults a buffer above the mmap
threshold is mapped fresh and returned to the OS on free, so every first touch page-faults: on Gowalla that
was ~30% of a training batch and ~65% of full-ranking evaluation. Raising the mmap and trim thresholds keeps
buffers of up to GRAPHREC_MALLOC_KEEP_MIB (default 512) in the heap for reuse. Bigger ones (a 30M-event graph's
~1 GB tables) fragmented a heap that kept them (peak RSS 15.5 against 11.6 GiB), so they stay mapped, and
torch backs them with transparent huge pages (THP_MEM_ALLOC_ENABLE, set by `request_huge_pages` before torch
is imported): one fault per 2 MiB instead of per 4 KiB, so mapping them costs a 30M training step ~7% instead
of ~37% (docs/benchmarks.md, "Peak memory at 30M"). GRAPHREC_MALLOC_TUNING=0 turns both off; a no-op off glibc
and where the kernel has THP disabled.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

from .errors import GraphrecError

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_done = False


def tuning_enabled() -> bool:
    """False when the user opted out with GRAPHREC_MALLOC_TUNING=0."""
    return os.environ.get("GRAPHREC_MALLOC_TUNING", "1") != "0"


def request_huge_pages() -> bool:
    """Ask torch for THP-backed buffers of 2 MiB and more (THP_MEM_ALLOC_ENABLE=1, inherited by child processes);
    True if set here. Must run before torch is imported (torch reads the variable once); a user's own value wins."""
    if not tuning_enabled() or "torch" in sys.modules or "THP_MEM_ALLOC_ENABLE" in os.environ:
        return False
    os.environ["THP_MEM_ALLOC_ENABLE"] = "1"
    return True


def tune_allocator() -> bool:
    """Raise glibc's mmap/trim thresholds once per process; True if applied. A malformed
    GRAPHREC_MALLOC_KEEP_MIB is a GraphrecError."""
    global _done
    setting = os.environ.get("GRAPHREC_MALLOC_KEEP_MIB", "512")
    if not setting.isdigit() or not 0 < int(setting) <= 4096:  # checked on every call: a typo is never silent
        raise GraphrecError(f"GRAPHREC_MALLOC_KEEP_MIB={setting!r}: expected a whole number of MiB from 1 to 4096, "
                            "e.g. 256 (or unset it: 512)")
    if _done or not tuning_enabled():
        return _done
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        keep = int(setting) << 20
        ok = libc.mallopt(_M_MMAP_THRESHOLD, keep) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, (1 << 31) - 1) == 1
    except (OSError, AttributeError):
        ok = False
    _done = ok
    return ok
