"""Shared test fixtures: every test gets the session's torch thread count back (the trainer sets train.threads)."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _keep_thread_count():
    """Restore torch's intra-op thread count after each test."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
