"""graphrec's large-buffer memory policy: huge pages requested before torch loads, and the opt-outs."""
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="torch's THP mode and glibc are Linux's")

PROBE = """
import os, sys
{first}
import torch
ptrs = [torch.empty(1 << 20).data_ptr() for _ in range(5)]  # 4 MiB: page-aligned (madvised) only in torch's THP mode
print(os.environ.get("THP_MEM_ALLOC_ENABLE"), all(p % 4096 == 0 for p in ptrs))
"""


def run_fresh(script: str, **env: str) -> list[str]:
    """The words `script` prints in a fresh Python process whose memory settings are only those in `env`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("THP_MEM", "GRAPHREC_MALLOC"))}
    return subprocess.run([sys.executable, "-c", script], env={**clean, **env}, capture_output=True, text=True,
                          check=True).stdout.split()


def probe(first: str, **env: str) -> list[str]:
    """[THP_MEM_ALLOC_ENABLE as the process saw it, whether torch page-aligned every allocation] of a fresh process."""
    return run_fresh(PROBE.format(first=first), **env)


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


REUSE = """
import resource
import graphrec, torch
from graphrec.allocator import tune_allocator
tune_allocator()
def touch():
    x = torch.empty(16 << 20)  # 64 MiB
    x.fill_(1.0)
touch()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
touch()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults_of_a_second_64mib_buffer(**env: str) -> int:
    """Page faults while a fresh process allocates and fills a 64 MiB tensor the second time."""
    return int(run_fresh(REUSE, **env)[-1])


def thp_possible() -> bool:
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as fh:
            return "[never]" not in fh.read()
    except OSError:
        return False


def test_a_buffer_under_the_keep_line_is_reused_from_the_heap_without_page_faults():
    assert faults_of_a_second_64mib_buffer() < 1000  # 64 MiB <= 512 MiB: the freed buffer comes back untouched


def test_a_buffer_over_the_keep_line_is_mapped_again_and_huge_pages_cut_its_faults():
    small_pages = faults_of_a_second_64mib_buffer(GRAPHREC_MALLOC_KEEP_MIB="16", THP_MEM_ALLOC_ENABLE="0")
    assert small_pages >= 16_000  # one fault per 4 KiB page of a fresh mapping (16,384 pages)
    if thp_possible():
        assert faults_of_a_second_64mib_buffer(GRAPHREC_MALLOC_KEEP_MIB="16") < small_pages / 10  # 2 MiB pages
