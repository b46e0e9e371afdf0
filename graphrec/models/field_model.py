"""Shared base of the FM family: field embeddings with a linear term, plain or GEM embeddings, L2; a model adds its
interaction. GEM (Yang et al., arXiv 2002.06561) swaps each feature's v_i for g(i), a GraphSAGE-style embedding over
the features that co-occur with it in positive training rows."""
from __future__ import annotations

from typing import ClassVar, Literal, Optional

import torch
from pydantic import Field, model_validator

from ..batches import PointBatch
from ..errors import GraphrecError
from ..losses import l2_reg
from ..schema import ModelConfig, Section
from .base import ModelContext
from .fields import MLP, FieldEmbedding
from .gem import GemEmbedding, feature_cooccurrence_graph
from .pointwise import PointwiseModel


class GemConfig(Section):
    """GEM's embedding generator g(.): layers, neighbours sampled per hop (redrawn each epoch), aggregator."""

    layers: int = Field(1, ge=0, description="graph layers of g(.) (0: g(i) = v_i, the base model)")
    fanouts: list[int] = Field(default_factory=lambda: [10], description="neighbours sampled per node for each "
                               "layer (redrawn each epoch); one value applies to every layer")
    aggregator: Literal["sage", "mean"] = Field("sage", description="sage: W [h || mean of neighbours] with ReLU; "
                                                                    "mean: weightless mean (LightGCN-style ablation)")
    weighted_sampling: bool = Field(False, description="draw neighbours in proportion to co-occurrence counts "
                                                       "instead of uniformly (graph-construction ablation)")
    redraw: Literal["epoch", "batch"] = Field("epoch", description="when training redraws the sampled neighbours: "
                                              "epoch (a fixed table per epoch, the spec) or batch (afresh for every "
                                              "batch's features, GraphSAGE's usual form)")
    eval_neighbors: Literal["draw", "all"] = Field("draw", description="what g(.) averages at evaluation: draw (the "
                                                   "last epoch's sampled neighbours) or all (every neighbour, weighted "
                                                   "like the sampling; predictions then do not depend on the draw)")

    @model_validator(mode="after")
    def _check(self) -> "GemConfig":
        if any(f < 1 for f in self.fanouts):
            raise ValueError(f"model.gem.fanouts {self.fanouts}: every layer needs at least 1 neighbour")
        if self.layers and len(self.fanouts) not in (1, self.layers):
            raise ValueError(f"model.gem.fanouts has {len(self.fanouts)} values for {self.layers} layers; give one "
                             "per layer, or one for all")
        return self

    def hop_fanouts(self) -> list[int]:
        """One fanout per layer."""
        return self.fanouts * self.layers if len(self.fanouts) == 1 else list(self.fanouts)


class FieldModelConfig(ModelConfig):
    """Keys of every FM-family model: the embedding provider and GEM's keys."""

    init_std: float = Field(0.01, gt=0, description="normal(0, init_std) init of the feature embeddings")
    embedding: Literal["plain", "gem"] = Field("plain", description="plain: one vector v_i per feature; gem: GEM's "
                                                                    "high-order g(i) over the feature graph")
    gem: GemConfig = Field(default_factory=GemConfig, description="GEM's keys (used when embedding is gem)")


class DeepConfig(FieldModelConfig):
    """Keys of the FM-family models with an MLP tower (NFM, DeepFM)."""

    hidden: list[int] = Field(default_factory=lambda: [64], description="widths of the MLP's hidden layers")
    dropout: float = Field(0.5, ge=0, lt=1, description="dropout after each hidden layer")
    batch_norm: bool = Field(True, description="batch normalization after each hidden layer's Linear (NFM: also on the "
                                                    "Bi-Interaction vector, as its code)")

    def tower(self, in_dim: int) -> MLP:
        """The MLP these keys describe, (b, in_dim) -> (b,)."""
        return MLP(in_dim, self.hidden, self.dropout, self.batch_norm)


class FieldModel(PointwiseModel):
    """prediction = w0 + sum_i w_i x_i + interaction(x_i e_i), with e_i = v_i (plain) or g(i) (GEM).

    Subclasses define `interaction((b, f, d)) -> (b,)`. L2 (train.reg) is 0.5 * the squared base embeddings and
    linear weights of the batch's features / batch size. GEM's neighbours are redrawn at each epoch start from the
    trainer's view generator, so a resumed epoch sees the same draw.
    """

    config_class: ClassVar[type[FieldModelConfig]] = FieldModelConfig

    def __init__(self, cfg: FieldModelConfig, ctx: ModelContext):
        super().__init__(cfg, ctx)
        data = ctx.dataset.fields
        if data is None:
            raise GraphrecError(f"model {self.registry_name} reads feature rows, but dataset {ctx.dataset.name} has "
                                "user-item events only; use data.format libfm, csv_fields or synthetic_fields")
        self.num_fields = data.space.num_fields
        self.fields = FieldEmbedding(data.space.num_features, cfg.embedding_dim, cfg.init_std)
        self.gem: Optional[GemEmbedding] = None
        if cfg.embedding == "gem":
            graph = feature_cooccurrence_graph(data.rows["train"], data.space)  # training positives only
            gem = cfg.gem
            self.gem = GemEmbedding(graph, cfg.embedding_dim, gem.hop_fanouts(), gem.layers, gem.aggregator,
                                    gem.weighted_sampling, gem.eval_neighbors, gem.redraw, ctx.device)

    def on_epoch_start(self, epoch: int, generator: torch.Generator) -> None:
        """Redraw GEM's sampled neighbours for the epoch."""
        if self.gem is not None:
            self.gem.resample(generator)

    def embed(self, batch: PointBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """(b, f, d) value-scaled embeddings (v_i or g(i)) and the (b,) linear term of the batch's rows."""
        vectors = self.gem(self.fields.embedding, batch.features) if self.gem is not None else None
        return self.fields(batch.features, batch.values, vectors)

    def interaction(self, emb: torch.Tensor) -> torch.Tensor:
        """(b,) the model's interaction term of (b, f, d) embeddings."""
        raise NotImplementedError

    def predict(self, batch: PointBatch) -> torch.Tensor:
        """(b,) linear term + interaction term."""
        emb, linear = self.embed(batch)
        return linear + self.interaction(emb)

    def regularization(self, batch: PointBatch) -> torch.Tensor:
        """0.5 * (squared base embeddings and linear weights of the batch's features) / batch size; not computed
        (zero) when train.reg is 0."""
        if not self.reg:
            return torch.zeros(())
        fields = self.fields
        return l2_reg(len(batch), fields.embedding[batch.features], fields.linear[batch.features])
