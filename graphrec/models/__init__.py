"""Model registry: every model is registered by name with its config class."""
from __future__ import annotations

import difflib

from ..errors import GraphrecError
from .base import Model, ModelContext

MODELS: dict[str, type[Model]] = {}


def register(name: str):
    """Class decorator adding a Model subclass to the registry under `name`."""
    def add(cls: type[Model]) -> type[Model]:
        MODELS[name] = cls
        cls.registry_name = name
        return cls
    return add


def get_model_class(name: str, source: str = "") -> type[Model]:
    """The registered class for `name`; a one-line error with a did-you-mean otherwise."""
    if name not in MODELS:
        close = difflib.get_close_matches(str(name), MODELS, n=1)
        hint = f", did you mean '{close[0]}'?" if close else f"; known models: {', '.join(sorted(MODELS))}"
        raise GraphrecError(f"{source + ': ' if source else ''}unknown model '{name}' (model.name){hint}")
    return MODELS[name]




def build_model(cfg, dataset, device, partition=None):
    """The configured model (cfg: a validated Config) on `device`, built over the dataset's training data (or over
    this rank's `partition` of its graph)."""
    cls = get_model_class(cfg.model["name"])
    ctx = ModelContext(dataset, device, cfg.train, cfg.task or cls.tasks[0], cfg.dro, partition=partition)
    return cls(cls.config_class(**cfg.model), ctx).to(device)


from . import (afm, causaldiffrec, deepfm, drgo, fm, freedom, idsf, lattice, lightgcn, mf, nfm, pop,  # noqa: E402,F401
               sgcl, sgl, simgcl, vbpr, xsimgcl)  # registration
