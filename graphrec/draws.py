"""Large uniform draws for per-batch noise: numpy's SFC64 on the CPU, torch.rand on other devices.

torch's CPU generator (mt19937) fills one value at a time; SFC64 draws the same U[0, 1) distribution 2-3x faster,
which is most of SimGCL's noise cost on a CPU. Each call seeds SFC64 from one draw of the given torch generator,
so the torch generator's state (what checkpoints save) still fixes every later draw, and resumed runs stay exact.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch

_NUMPY_FLOATS = {torch.float32: np.float32, torch.float64: np.float64}


def uniform(shape: Sequence[int], generator: Optional[torch.Generator] = None,
            device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A `shape` tensor of U[0, 1) values, reproducible from `generator` (the global one when None)."""
    device = torch.device(device)
    if device.type != "cpu" or dtype not in _NUMPY_FLOATS:
        return torch.rand(tuple(shape), generator=generator, device=device, dtype=dtype)
    seed = int(torch.randint(2 ** 62, (1,), generator=generator))
    values = np.random.Generator(np.random.SFC64(seed)).random(tuple(shape), dtype=_NUMPY_FLOATS[dtype])
    return torch.from_numpy(values)
