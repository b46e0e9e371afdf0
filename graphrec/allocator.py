"""Keep freed large buffers in the process heap (glibc mallopt) so hot loops do not page-fault on every batch.

Each batch allocates several (num_nodes, dim) buffers. With glibc's defaults a buffer above the mmap
threshold is mapped fresh and returned to the OS on free, so every first touch page-faults: on Gowalla that
was ~30% of a training batch and ~65% of full-ranking evaluation. Raising the mmap and trim thresholds keeps
the memory in the heap for reuse. Buffers above GRAPHREC_MALLOC_KEEP_MIB (default 1024) are still mapped and
returned on free. The trade at scale (docs/benchmarks.md): on a 30M-event graph the heap-kept ~1 GB buffers
fragment it (peak RSS 15.2 GiB against 10.4 GiB without the tuning), while mapping buffers of 332 MB cost ~40%
more CPU per training step at 10M; GRAPHREC_MALLOC_KEEP_MIB=256 chooses memory. Opt out entirely with
GRAPHREC_MALLOC_TUNING=0; a no-op off glibc.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

from .errors import GraphrecError

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_done = False


def tune_allocator() -> bool:
    """Raise glibc's mmap/trim thresholds once per process; True if applied. A malformed
    GRAPHREC_MALLOC_KEEP_MIB is a GraphrecError."""
    global _done
    setting = os.environ.get("GRAPHREC_MALLOC_KEEP_MIB", "1024")
    if not setting.isdigit() or not 0 < int(setting) <= 4096:  # checked on every call: a typo is never silent
        raise GraphrecError(f"GRAPHREC_MALLOC_KEEP_MIB={setting!r}: expected a whole number of MiB from 1 to 4096, "
                            "e.g. 256 (or unset it: 1024)")
    if _done or os.environ.get("GRAPHREC_MALLOC_TUNING", "1") == "0":
        return _done
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        keep = int(setting) << 20
        ok = libc.mallopt(_M_MMAP_THRESHOLD, keep) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, (1 << 31) - 1) == 1
    except (OSError, AttributeError):
        ok = False
    _done = ok
    return ok
