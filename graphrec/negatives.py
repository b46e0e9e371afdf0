"""Synthesized hard negatives: MixGCF's positive mixing and hop mixing (Huang et al., KDD 2021), as in SGCL."""
from __future__ import annotations

from typing import Optional

import torch

MIX_KINDS = ("element", "layer")


def mixgcf_negatives(user_emb: torch.Tensor, pos_layers: torch.Tensor, table: torch.Tensor,
                     candidates: torch.Tensor, generator: Optional[torch.Generator] = None, mix: str = "element",
                     return_choice: bool = False):
    """(b, L+1, d) synthetic negative per layer from (b, L+1, d) positive layers and the (b, c) candidate rows of the
    (n, L+1, d) layer table.

    Positive mixing: n_jk = a * pos_k + (1 - a) * cand_jk with a ~ U(0, 1), drawn per entry of every
    candidate and layer (mix="element", the SGCL code) or once per sample and layer (mix="layer", MixGCF).
    Hop mixing: at each layer k keep the mixed candidate with the largest inner product with the user,
    given pooled as (b, d) (both reference codes, pool=mean) or per layer as (b, L+1, d) (MixGCF pool=concat).
    The choice is made without autograd over all b x c mixes; the kept mix is then recomputed from its candidate's
    layer row alone, so gradients reach the chosen candidates and the positive, and no (b, c, L+1, d) tensor is kept
    for the backward. The caller pools the result over layers (mean) into the (b, d) negative. With
    `return_choice` it also returns the (b, L+1) index (into c) of the candidate kept at each layer.
    """
    if mix not in MIX_KINDS:
        raise ValueError(f"unknown MixGCF mixing {mix!r}; choose one of {MIX_KINDS}")
    batch, num_layers, dim = pos_layers.shape
    with torch.no_grad():
        cand_layers = table.index_select(0, candidates.reshape(-1)).view(*candidates.shape, num_layers, dim)
        alpha_shape = cand_layers.shape if mix == "element" else (batch, 1, num_layers, 1)
        alpha = torch.rand(alpha_shape, generator=generator, device=table.device, dtype=table.dtype)
        mixed = alpha * pos_layers.unsqueeze(1) + (1 - alpha) * cand_layers
        user = user_emb.unsqueeze(1) if user_emb.dim() == 3 else user_emb[:, None, None, :]
        best = (mixed * user).sum(-1).argmax(dim=1)                               # (b, L+1)
        if mix == "element":
            kept_alpha = alpha.gather(1, best[:, None, :, None].expand(batch, 1, num_layers, dim)).squeeze(1)
        else:
            kept_alpha = alpha.squeeze(1)                                         # (b, L+1, 1): one per layer
    layer = torch.arange(num_layers, device=table.device)
    chosen = kept_alpha * pos_layers + (1 - kept_alpha) * table[candidates.gather(1, best), layer]
    return (chosen, best) if return_choice else chosen
