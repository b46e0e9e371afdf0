"""Checkpoints: atomic torch.save, loading with one-line errors, RNG and generator states, sharded conversion."""
from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from .atomic import atomic_write_bytes
from .errors import GraphrecError


def save_checkpoint(path: Path, state: dict) -> None:
    """torch.save `state` to `path` atomically."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: Path) -> dict:
    """Load a checkpoint written by save_checkpoint; one-line error if missing, truncated or corrupted."""
    path = Path(path)
    if not path.is_file():
        raise GraphrecError(f"no checkpoint at '{path}'; train first (graphrec train CONFIG) or pick another run")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a damaged file
        raise GraphrecError(f"checkpoint '{path}' is truncated or corrupted ({type(exc).__name__}), so it cannot be "
                            "used; train the run again (graphrec train CONFIG)") from None
    if not isinstance(state, dict) or "model" not in state:
        raise GraphrecError(f"'{path}' is not a graphrec checkpoint (no model state)")
    return state


def load_model_state(model: torch.nn.Module, state: dict, checkpoint: Path, dataset: Any,
                     overrides: Sequence[str] = ()) -> None:
    """Load a checkpoint's parameters into a model built from the run's (already compared) config, with eval `--set`
    `overrides` if any, and the data as it is now; a parameter that differs therefore means the overrides changed
    it, or else the data changed, said in one line."""
    own = model.state_dict()
    changed = sorted(set(own) ^ set(state)) if overrides else []
    if changed:
        which = "lacks the trained" if changed[0] in state else "gains a"
        raise GraphrecError(f"eval --set {' '.join(overrides)}: the model then {which} parameter '{changed[0]}'; "
                            "--set may change only what evaluation reads, not which parameters the model has")
    for key, saved in state.items():
        if key not in own or tuple(own[key].shape) == tuple(saved.shape):
            continue
        if overrides:
            raise GraphrecError(f"eval --set {' '.join(overrides)}: '{key}' becomes {tuple(own[key].shape)} but the "
                                f"checkpoint holds {tuple(saved.shape)}; --set may change only what evaluation "
                                "reads, not the shape of a trained parameter")
        raise GraphrecError(f"{checkpoint} does not fit the data as it is now: '{key}' is {tuple(saved.shape)} in "
                            f"the checkpoint but {tuple(own[key].shape)} for {dataset.num_users} users and "
                            f"{dataset.num_items} items at {dataset.source or 'the configured data'}; the data "
                            "files changed since the run: restore them, or train a new run")
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise GraphrecError(f"{checkpoint} does not fit this model ({str(exc).splitlines()[0]}); it was written by "
                            "other code or for another model: train a new run") from None


def rng_state() -> dict:
    """The python, numpy, torch and CUDA (current device, if CUDA is in use) global RNG states."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        # the current device only: get_rng_state_all() would create a context on every GPU from every rank
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what rng_state() returned (the CUDA state onto the current device)."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available():
        if isinstance(cuda, (list, tuple)):  # older checkpoints: one state per device
            torch.cuda.set_rng_state_all(cuda)
        else:
            torch.cuda.set_rng_state(cuda)


def module_generator_states(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """States of the torch.Generator attributes a model keeps for itself (edge dropout, noise), by 'path.attr'."""
    states = {}
    for prefix, sub in module.named_modules():
        for attr, value in vars(sub).items():
            if isinstance(value, torch.Generator):
                states[f"{prefix}.{attr}" if prefix else attr] = value.get_state()
    return states


def set_module_generator_states(module: torch.nn.Module, states: dict[str, torch.Tensor]) -> None:
    """Restore what module_generator_states() returned; a generator missing from the model is an error."""
    subs = dict(module.named_modules())
    for key, state in states.items():
        prefix, _, attr = key.rpartition(".")
        generator = getattr(subs.get(prefix), attr, None) if prefix in subs else None
        if not isinstance(generator, torch.Generator):
            raise GraphrecError(f"checkpoint holds the state of the model's generator '{key}', which this model "
                                "does not have; resume with the run's own code and config")
        generator.set_state(state)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def convert_sharded(model: torch.nn.Module, optimizers: dict, model_state: dict, optimizer_states: dict,
                    convert: Callable[[torch.Tensor], torch.Tensor]) -> tuple[dict, dict]:
    """Copies of a model state and of each named optimizer's state in which the model's sharded tables
    (`model.sharded_parameters()`, train.distributed: partitioned) and their moments (optimizer state tensors of the
    table's shape) are passed through `convert`: this rank's rows -> the whole table for a checkpoint, or back."""
    names = model.sharded_parameters()
    if not names:
        return model_state, optimizer_states
    params = dict(model.named_parameters())
    shapes = {id(params[n]): model_state[n].shape for n in names}
    model_state = {**model_state, **{n: convert(model_state[n]) for n in names}}
    converted = {}
    for name, state in optimizer_states.items():
        order = [p for group in optimizers[name].param_groups for p in group["params"]]  # state_dict's numbering
        per_param = dict(state["state"])
        for index, param in enumerate(order):
            shape = shapes.get(id(param))
            if shape is not None and index in per_param:
                per_param[index] = {k: convert(v) if torch.is_tensor(v) and v.shape == shape else v
                                    for k, v in per_param[index].items()}
        converted[name] = {**state, "state": per_param}
    return model_state, converted
