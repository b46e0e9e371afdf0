"""XSimGCL (Yu et al., TKDE 2023): one noisy pass; BPR on its final embedding, the contrastive loss between the final
embedding and an intermediate layer of the same pass."""
from __future__ import annotations

import torch
from pydantic import Field, model_validator

from ..graph.propagate import weighted_propagation
from . import register
from .contrastive import ContrastiveConfig, default_of
from .simgcl import SimGCL, SimGCLConfig


class XSimGCLConfig(SimGCLConfig):
    """XSimGCL keys; defaults from SELFRec's XSimGCL.yaml (2 layers, l* = 1, lambda 0.2, eps 0.2, tau 0.15)."""

    ssl_weight: float = default_of(ContrastiveConfig, "ssl_weight", 0.2)
    ssl_temperature: float = default_of(ContrastiveConfig, "ssl_temperature", 0.15)
    noise_eps: float = default_of(SimGCLConfig, "noise_eps", 0.2)
    cl_layer: int = Field(1, ge=1, description="layer l* (1..num_layers) whose perturbed embedding is contrasted "
                                               "with the final one")

    mixgcf_dropout: float = default_of(ContrastiveConfig, "mixgcf_dropout", 0.0)

    @model_validator(mode="after")
    def _check(self) -> "XSimGCLConfig":
        if self.cl_layer > self.num_layers:
            raise ValueError(f"model.cl_layer {self.cl_layer} must be at most model.num_layers ({self.num_layers})")
        if self.mixgcf_dropout > 0:
            raise ValueError(f"model.mixgcf_dropout ({self.mixgcf_dropout}) drops layers of a clean BPR pass; XSimGCL "
                             "mixes the layers of its one noisy pass, which has none: leave it at 0")
        return self


@register("xsimgcl")
class XSimGCL(SimGCL):
    """One perturbed pass gives the BPR table, view 1 (its final embedding) and view 2 (its layer cl_layer)."""

    config_class = XSimGCLConfig
    summary = "XSimGCL: one noisy pass; InfoNCE between its final embedding and an intermediate layer"

    def encode(self, rows):
        """Final embedding and layer cl_layer of one noisy pass (with model.mixgcf also its layer stack as the table)."""
        stack = tuple(range(self.cfg.num_layers + 1)) if self.cfg.mixgcf else ()
        final, layers = weighted_propagation(self.graph, self.embedding, self.layer_weights, rows, self.cfg.backend,
                                             self.noise, extra_layers=(self.cfg.cl_layer, *stack))
        return (torch.stack(layers[1:], 1) if stack else final), final, layers[0]
