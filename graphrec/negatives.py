"""Synthesized hard negatives: MixGCF's positive mixing and hop mixing (Huang et al., KDD 2021), as in SGCL."""
from __future__ import annotations

from typing import Optional

import torch

MIX_KINDS = ("element", "layer")


def mixgcf_negatives(user_emb: torch.Tensor, pos_layers: torch.Tensor, cand_layers: torch.Tensor,
                     generator: Optional[torch.Generator] = None, mix: str = "element",
                     return_choice: bool = False):
    """(b, L+1, d) synthetic negative per layer from (b, L+1, d) positive and (b, c, L+1, d) candidate layers.

    Positive mixing: n_jk = a * pos_k + (1 - a) * cand_jk with a ~ U(0, 1), drawn per entry of every
    candidate and layer (mix="element", the SGCL code) or once per sample and layer (mix="layer", MixGCF).
    Hop mixing: at each layer k keep the mixed candidate with the largest inner product with the user,
    given pooled as (b, d) (both reference codes, pool=mean) or per layer as (b, L+1, d) (MixGCF pool=concat).
    The choice is not differentiated; gradients reach the chosen candidates and the positive. The caller
    pools the result over layers (mean) into the (b, d) negative. With `return_choice` it also returns the (b, L+1)
    index of the candidate kept at each layer.
    """
    if mix not in MIX_KINDS:
        raise ValueError(f"unknown MixGCF mixing {mix!r}; choose one of {MIX_KINDS}")
    batch, _, num_layers, dim = cand_layers.shape
    alpha_shape = cand_layers.shape if mix == "element" else (batch, 1, num_layers, 1)
    alpha = torch.rand(alpha_shape, generator=generator, device=cand_layers.device, dtype=cand_layers.dtype)
    mixed = alpha * pos_layers.unsqueeze(1) + (1 - alpha) * cand_layers          # (b, c, L+1, d)
    user = user_emb.unsqueeze(1) if user_emb.dim() == 3 else user_emb[:, None, None, :]
    best = (mixed.detach() * user.detach()).sum(-1).argmax(dim=1)                 # (b, L+1)
    index = best[:, None, :, None].expand(batch, 1, num_layers, dim)
    chosen = mixed.gather(1, index).squeeze(1)
    return (chosen, best) if return_choice else chosen
