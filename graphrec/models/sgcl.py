"""SGCL (Zhao, Yang et al., TOIS 2025): SGL's edge-dropout views with the symmetric contrastive loss, users and items
contrasted jointly, as the official code does (docs/contrastive.md; /shared spec sgcl.md)."""
from __future__ import annotations

from . import register
from .contrastive import ContrastiveConfig, SSLLoss, default_of
from .sgl import SGL, SGLConfig


class SGCLConfig(SGLConfig):
    """SGCL keys; defaults from the official code (conf/SGCL.conf and scl_loss(view1, view2, 0.1, 0.01, temp))."""

    ssl_loss: SSLLoss = default_of(ContrastiveConfig, "ssl_loss", "symmetric")
    ssl_weight: float = default_of(ContrastiveConfig, "ssl_weight", 0.01)
    ssl_joint: bool = default_of(ContrastiveConfig, "ssl_joint", True)


@register("sgcl")
class SGCL(SGL):
    """SGL with SGCL's defaults: symmetric (RINCE-form) loss, beta 0.01, users and items as one contrasted set."""

    config_class = SGCLConfig
    summary = "SGCL: SGL's edge-dropout views with the symmetric contrastive loss against noisy views"
