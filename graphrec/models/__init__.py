"""Model registry: every model is registered by name with its config class."""
from __future__ import annotations

import difflib

from ..errors import GraphrecError
from .base import Recommender

MODELS: dict[str, type[Recommender]] = {}


def register(name: str):
    """Class decorator adding a Recommender subclass to the registry under `name`."""
    def add(cls: type[Recommender]) -> type[Recommender]:
        MODELS[name] = cls
        cls.registry_name = name
        return cls
    return add


def get_model_class(name: str, source: str = "") -> type[Recommender]:
    """The registered class for `name`; a one-line error with a did-you-mean otherwise."""
    if name not in MODELS:
        close = difflib.get_close_matches(str(name), MODELS, n=1)
        hint = f", did you mean '{close[0]}'?" if close else f"; known models: {', '.join(sorted(MODELS))}"
        raise GraphrecError(f"{source + ': ' if source else ''}unknown model '{name}' (model.name){hint}")
    return MODELS[name]


def model_config_class(name: str, source: str = ""):
    """The pydantic config class of model `name`."""
    return get_model_class(name, source).config_class


from . import lightgcn, mf  # noqa: E402,F401  (registration)
