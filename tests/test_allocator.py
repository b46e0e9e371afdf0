"""graphrec's large-buffer memory policy: huge pages requested before torch loads, and the opt-outs."""
import os
import subprocess
import sys

import pytest

PROBE = """
import os, sys
{first}
import torch
ptrs = [torch.empty(1 << 20).data_ptr() for _ in range(5)]  # 4 MiB: page-aligned (madvised) only in torch's THP mode
print(os.environ.get("THP_MEM_ALLOC_ENABLE"), all(p % 4096 == 0 for p in ptrs))
"""


def probe(first: str, **env: str) -> list[str]:
    """[THP_MEM_ALLOC_ENABLE as the process saw it, whether torch page-aligned every allocation] of a fresh process."""
    clean = {k: v for k, v in os.environ.items() if k not in ("THP_MEM_ALLOC_ENABLE", "GRAPHREC_MALLOC_TUNING")}
    out = subprocess.run([sys.executable, "-c", PROBE.format(first=first)], env={**clean, **env},
                         capture_output=True, text=True, check=True).stdout
    return out.split()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="torch's THP mode is Linux-only")
def test_importing_graphrec_first_gives_torch_huge_page_buffers():
    assert probe("import graphrec") == ["1", "True"]


@pytest.mark.parametrize("first, env", [
    ("import graphrec", {"GRAPHREC_MALLOC_TUNING": "0"}),  # the user's opt-out
    ("import torch; import graphrec", {}),                  # too late: torch already read its setting
    ("import graphrec", {"THP_MEM_ALLOC_ENABLE": "0"}),     # the user's own value wins
])
def test_huge_pages_are_not_requested_when_opted_out_or_too_late(first, env):
    seen, aligned = probe(first, **env)
    assert seen in ("None", "0") and aligned == "False"
