"""VBPR, LATTICE, FREEDOM and IDSF on synthetic multimodal data: IDSF's attention and ablation keys act as stated,
FREEDOM prunes by degree, every model trains with a falling loss, per-epoch state resumes exactly, and a modality
the dataset lacks is a one-line error."""
from __future__ import annotations

import math

import pytest
import torch

from graphrec.batches import PairBatch
from graphrec.config import build_config
from graphrec.data.loader import load_dataset
from graphrec.errors import GraphrecError
from graphrec.graph.item_graph import EdgeList, edge_dots, edge_matmul, normalized_edge_values
from graphrec.graph.propagate import injected_mean_propagation
from graphrec.losses import info_nce_intra
from graphrec.models import build_model
from graphrec.models.freedom import FREEDOM
from graphrec.models.idsf import CandidateAttention
from graphrec.trainer import Trainer

from train_helpers import history, results, stopped_and_resumed

MULTIMODAL = {
    "name": "mm", "seed": 4, "device": "cpu",
    "data": {"synthetic": {"num_users": 240, "num_items": 160, "num_communities": 4, "mean_degree": 14, "seed": 3,
                           "item_features": {"text": 16, "image": 32}, "feature_noise": 0.5}},
    "split": {"method": "random", "valid_ratio": 0.1, "test_ratio": 0.2},
    "train": {"epochs": 4, "batch_size": 256, "lr": 0.01, "reg": 1e-4, "patience": 0, "threads": 1,
              "progress": False},
    "eval": {"topk": [10], "metrics": ["recall"]},
    "tracking": {"mode": "disabled"},
}


@pytest.fixture(scope="module")
def dataset():
    return load_dataset(build_config(MULTIMODAL))


def config(tmp_path, model: dict, **train):
    return build_config({**MULTIMODAL, "output_dir": str(tmp_path / "runs"), "model": model,
                         "train": {**MULTIMODAL["train"], **train}})


def idsf(dataset, **keys):
    torch.manual_seed(0)
    cfg = build_config({**MULTIMODAL, "model": {"name": "idsf", "embedding_dim": 8, **keys}})
    return build_model(cfg, dataset, torch.device("cpu"))


def test_attention_weights_sum_to_one_and_weigh_the_candidates():
    torch.manual_seed(0)
    attention = CandidateAttention(4)
    candidates = torch.randn(5, 3, 4)
    out, weights = attention(candidates)
    assert weights.shape == (5, 3) and torch.allclose(weights.sum(1), torch.ones(5)) and (weights > 0).all()
    assert torch.allclose(out, torch.einsum("nm,nmd->nd", weights, candidates))
    single, one = attention(candidates[:, :1])
    assert torch.equal(one, torch.ones(5, 1)) and torch.allclose(single, candidates[:, 0])


def test_intra_view_info_nce_matches_the_dense_formula_in_chunks_and_on_anchor_subsets():
    torch.manual_seed(0)
    view1, view2 = torch.randn(7, 3, requires_grad=True), torch.randn(7, 3, requires_grad=True)
    n1, n2 = torch.nn.functional.normalize(view1, dim=1), torch.nn.functional.normalize(view2, dim=1)
    s11, s12 = (n1 @ n1.t() / 0.5).exp(), (n1 @ n2.t() / 0.5).exp()
    per_row = -torch.log(s12.diag() / (s12.sum(1) + s11.sum(1) - s11.diag()))  # GRACE's form, one direction
    for anchors, expected in [(None, per_row.mean()), (torch.tensor([1, 4, 6]), per_row[[1, 4, 6]].mean())]:
        got = info_nce_intra(view1, view2, 0.5, anchors, chunk_rows=2)
        assert got.item() == pytest.approx(expected.item(), abs=1e-5)
        reference = torch.autograd.grad(expected, [view1, view2], retain_graph=True)
        for a, b in zip(torch.autograd.grad(got, [view1, view2]), reference):
            assert torch.allclose(a, b, atol=1e-6)


def test_info_nce_over_a_sampled_item_set_by_hand():
    # items 1 and 3 are not drawn: whatever their rows, they are neither anchors nor negatives
    view1 = torch.tensor([[1.0, 0.0], [5.0, 5.0], [0.0, 2.0], [-1.0, 3.0]])
    view2 = torch.tensor([[3.0, 0.0], [-2.0, 1.0], [1.0, 0.0], [0.0, -1.0]])
    drawn = torch.tensor([0, 2])
    # anchor 0: positive cos 1, negatives cos(n1_0, n2_2) = 1 and cos(n1_0, n1_2) = 0 -> log(2 + e^-2), tau 0.5;
    # anchor 2: positive cos 0, negatives cos(n1_2, n2_0) = 0 and cos(n1_2, n1_0) = 0 -> log 3
    expected = (math.log(2 + math.exp(-2)) + math.log(3)) / 2
    assert info_nce_intra(view1[drawn], view2[drawn], 0.5).item() == pytest.approx(expected, rel=1e-6)


def _cl_by_formula(model, out, drawn: torch.Tensor) -> torch.Tensor:
    """IDSF's contrastive sum over the drawn items, from the full-item views, by GRACE's formula written out."""
    total = torch.zeros(())
    for a, b in model.contrastive_pairs(out):
        n1, n2 = (torch.nn.functional.normalize(v[drawn], dim=1) for v in (a, b))
        s11, s12 = (n1 @ n1.t() / 0.5).exp(), (n1 @ n2.t() / 0.5).exp()
        total = total - torch.log(s12.diag() / (s12.sum(1) + s11.sum(1) - s11.diag())).mean()
    return total


def test_sampled_contrastive_terms_follow_the_formula_and_equal_the_all_item_form_when_they_cover_all(dataset):
    batch = PairBatch(torch.tensor([0, 5, 9, 5]), torch.tensor([3, 7, 7, 100]), torch.tensor([1, 2, 150, 4]))
    model = idsf(dataset, cl_items=40)
    state = model.batch_gen.get_state()
    drawn, anchors = model.contrastive_items(batch)
    assert anchors is None and len(drawn) == 40 == len(torch.unique(drawn))
    model.batch_gen.set_state(state)
    got = model.loss(batch)
    assert got["cl"].item() == pytest.approx(_cl_by_formula(model, model.encode(), drawn).item(), rel=1e-5)
    everything = {name: value.item() for name, value in idsf(dataset, cl_items="all").loss(batch).items()}
    for count in (dataset.num_items, 10 ** 6):  # a set that covers every item is the official loss
        covered = idsf(dataset, cl_items=count).loss(batch)
        assert {name: pytest.approx(value.item(), rel=1e-6) for name, value in covered.items()} == everything


def test_batch_anchors_are_the_positives_among_the_drawn_items(dataset):
    batch = PairBatch(torch.tensor([0, 5, 9]), torch.tensor([3, 7, 7]), torch.tensor([1, 2, 150]))
    model = idsf(dataset, cl_items=20, cl_anchors="batch")
    items, anchors = model.contrastive_items(batch)
    assert torch.equal(items[anchors], torch.tensor([3, 7])) and 20 <= len(items) <= 22


def test_rows_of_the_forward_equal_the_full_forward(dataset):
    model = idsf(dataset)
    users = model.num_users
    rows = torch.tensor([3, users + 10, 7, users + 1, 3, users + 150])
    with torch.no_grad():
        assert torch.allclose(model.propagate(rows), model.propagate()[rows], atol=1e-6)
        part, full = model.encode(rows, torch.tensor([9, 2])), model.encode()
        assert torch.allclose(part.fused, full.fused[[9, 2]], atol=1e-6)


def test_injected_mean_propagation_matches_autograd_of_the_loop_on_a_non_symmetric_graph():
    torch.manual_seed(0)
    dense = (torch.rand(6, 6) < 0.4).float() * torch.rand(6, 6)
    x0, inject = torch.randn(6, 3, requires_grad=True), torch.randn(6, 3, requires_grad=True)
    weight = torch.randn(6, 3)
    for add in (inject, None):
        got = injected_mean_propagation(dense.to_sparse_csr(), dense.t().contiguous().to_sparse_csr(), x0, 2, add)
        h = total = x0
        for _ in range(2):
            h = dense @ h + (add if add is not None else 0)
            total = total + h
        assert torch.allclose(got, total / 3, atol=1e-6)
        inputs = [x0] + ([inject] if add is not None else [])
        for a, b in zip(torch.autograd.grad((got * weight).sum(), inputs),
                        torch.autograd.grad((total / 3 * weight).sum(), inputs)):
            assert torch.allclose(a, b, atol=1e-6)


def test_id_in_structure_adds_gamma_times_the_ids_after_each_layer(dataset):
    model = idsf(dataset, num_layers=1, gamma=0.3)
    features = {m: model.projected(m) for m in model.modalities}
    ids = {m: model.item_ids(m) for m in model.modalities}
    with_ids = model.structure(features, ids)
    model.cfg.id_in_structure = False
    without = model.structure(features, ids)
    users = model.embedding[:model.num_users]
    for j, m in enumerate(model.modalities):  # mean of H_0 and H_1: the injection counts once in two layers
        assert torch.allclose(with_ids[:, j] - without[:, j], 0.3 / 2 * torch.cat([users, ids[m]]), atol=1e-6)


def test_without_id_in_content_the_content_is_the_projected_features(dataset):
    model = idsf(dataset, id_in_content=False)
    out = model.encode()
    for m in model.modalities:
        assert torch.equal(out.content[m], out.features[m])
    assert len(model.contrastive_pairs(out)) == 2  # only (h_m, h_f) per modality
    full = idsf(dataset)
    assert len(full.contrastive_pairs(full.encode())) == 6
    for m in full.modalities:
        assert not torch.allclose(full.encode().content[m], full.encode().features[m])


def _depends_on(model, tensor: torch.Tensor) -> bool:
    """Whether the final table changes when `tensor` (a parameter or a feature matrix) is perturbed in place."""
    with torch.no_grad():
        before = model.encode().table.clone()
        tensor.add_(torch.randn_like(tensor))
        return not torch.allclose(model.encode().table, before)


def test_ids_reach_the_scores_only_through_the_paths_the_keys_open(dataset):
    for keys, depends in [({}, True), ({"id_in_content": False}, True), ({"id_in_structure": False}, True),
                          ({"id_in_content": False, "id_in_structure": False}, False)]:
        model = idsf(dataset, **keys)
        assert _depends_on(model, model.embedding) == depends, keys
    model = idsf(dataset, id_in_structure=False)  # the user IDs E_u enter the structure only
    assert not _depends_on(model, model.embedding[:model.num_users])


def test_one_modality_ignores_the_others(dataset):
    model = idsf(dataset, modalities=["text"])
    assert model.modalities == ["text"] and set(model.projections) == set(model.raw_features) == {"text"}
    assert _depends_on(model, model.raw_features["text"])
    assert len(model.contrastive_pairs(model.encode())) == 2  # (F, h) and (E, h); no fusion term


def test_unknown_modality_is_one_line_naming_the_datasets(dataset):
    for name in ("vbpr", "lattice", "freedom", "idsf"):
        cfg = build_config({**MULTIMODAL, "model": {"name": name, "modalities": ["audio"]}})
        with pytest.raises(GraphrecError, match=r"model.modalities names modality 'audio'.*are: text, image$"):
            build_model(cfg, dataset, torch.device("cpu"))
    cfg = build_config({**MULTIMODAL, "model": {"name": "freedom", "modality_weights": {"text": 1.0}}})
    with pytest.raises(GraphrecError, match="model.modality_weights names"):
        build_model(cfg, dataset, torch.device("cpu"))


def test_freedom_keeps_the_share_of_edges_and_favours_low_degree_ones(dataset):
    cfg = build_config({**MULTIMODAL, "model": {"name": "freedom", "edge_dropout": 0.7}})
    model: FREEDOM = build_model(cfg, dataset, torch.device("cpu"))
    edges = len(dataset.train)
    weight = model.edge_keep_weight
    kept = torch.zeros(edges)
    for epoch in range(20):
        model.on_epoch_start(epoch, torch.Generator().manual_seed(epoch))
        assert model.view.nnz == 2 * round(0.3 * edges)
        keys = model.view.users * model.num_items + model.view.items
        kept += torch.isin(model.graph.users * model.num_items + model.graph.items, keys).float()
    low, high = weight > weight.median(), weight <= weight.median()
    assert kept[low].mean() > 1.2 * kept[high].mean()


def _random_edges(n: int, count: int, generator: torch.Generator) -> EdgeList:
    """An n-node edge list built from `count` random (row, col) draws, given to EdgeList in shuffled order."""
    keys = torch.unique(torch.randint(0, n * n, (count,), generator=generator))
    keys = keys[torch.randperm(len(keys), generator=generator)]
    return EdgeList.build(keys // n, keys % n, n)


def test_edge_matmul_and_normalized_values_equal_the_dense_graph_with_gradients():
    generator = torch.Generator().manual_seed(0)
    n, d = 7, 3
    edges = _random_edges(n, 20, generator)
    row, col = edges.row, edges.col
    weight = torch.rand(len(row), generator=generator).requires_grad_()
    x = torch.randn(n, d, generator=generator).requires_grad_()
    out = edge_matmul(edges, normalized_edge_values(row, col, weight, n), x)
    dense_weight = weight.detach().clone().requires_grad_()
    dense_x = x.detach().clone().requires_grad_()
    graph = torch.zeros(n, n).index_put((row, col), dense_weight)
    inv_sqrt = graph.sum(1).pow(-0.5).nan_to_num(posinf=0.0)
    expected = (inv_sqrt[:, None] * graph * inv_sqrt[None, :]) @ dense_x
    torch.testing.assert_close(out, expected)
    upstream = torch.randn(n, d, generator=generator)
    (out * upstream).sum().backward()
    (expected * upstream).sum().backward()
    torch.testing.assert_close(weight.grad, dense_weight.grad)
    torch.testing.assert_close(x.grad, dense_x.grad)


def test_edge_dots_equal_the_gathered_products_with_gradients():
    generator = torch.Generator().manual_seed(1)
    n, d = 9, 4
    edges = _random_edges(n, 30, generator)
    a = torch.randn(n, d, dtype=torch.float64, generator=generator).requires_grad_()
    b = torch.randn(n, d, dtype=torch.float64, generator=generator).requires_grad_()
    torch.testing.assert_close(edge_dots(edges, a, b), (a[edges.row] * b[edges.col]).sum(1))
    torch.autograd.gradcheck(lambda a, b: edge_dots(edges, a, b), (a, b))
    torch.autograd.gradcheck(lambda a: edge_dots(edges, a, a), (a,))  # one tensor on both sides, as LATTICE's cosine
    values = torch.randn(len(edges.row), dtype=torch.float64, generator=generator).requires_grad_()
    torch.autograd.gradcheck(lambda v, x: edge_matmul(edges, v, x), (values, a))


def test_lattice_convolves_over_the_neighbours_it_holds_now(dataset):
    """The symmetrized edges are kept between steps, but relearned or loaded neighbours take effect at once."""
    cfg = build_config({**MULTIMODAL, "model": {"name": "lattice", "embedding_dim": 8}})
    model = build_model(cfg, dataset, torch.device("cpu"))
    items = model.embedding[model.num_users:].detach()
    before = model.item_convolution(items)
    model.load_state_dict({**model.state_dict(), "neighbours": model.neighbours.roll(1, dims=1).flip(1)})
    fresh = build_model(cfg, dataset, torch.device("cpu"))
    fresh.load_state_dict(model.state_dict())
    after = model.item_convolution(items)
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, fresh.item_convolution(items))


@pytest.mark.parametrize("model", [{"name": "vbpr"}, {"name": "lattice"}, {"name": "freedom"},
                                   {"name": "idsf", "cl_weight": 0.1}], ids=lambda m: m["name"])
def test_every_model_trains_with_a_falling_loss(tmp_path, model):
    trainer = Trainer(config(tmp_path, {"embedding_dim": 16, **model}))
    metrics = trainer.fit()
    losses = [record["train/loss"] for record in history(trainer.run_dir)]
    assert losses[-1] < 0.9 * losses[0], losses
    assert metrics["test/recall@10"] > 0


def test_finetuned_features_train_while_the_raw_copies_stay(tmp_path, dataset):
    trainer = Trainer(config(tmp_path, {"name": "vbpr", "embedding_dim": 8, "finetune_features": True}, epochs=1),
                      dataset=dataset)
    model = trainer.model
    before = {m: x.clone() for m, x in model.raw_features.items()}
    trainer.fit()
    for m in model.modalities:
        assert torch.equal(model.raw_features[m], before[m])
        assert not torch.equal(model.feature(m), before[m]) and model.feature(m).requires_grad


@pytest.mark.parametrize("model", ["freedom", "lattice"])
def test_per_epoch_state_resumes_exactly(tmp_path, model):
    cfg = config(tmp_path, {"name": model, "embedding_dim": 8}, epochs=3, batch_size=128)
    trainer = Trainer(cfg)
    reference = results(trainer.fit()), history(trainer.run_dir)
    steps_per_epoch = -(-len(trainer.dataset.train) // 128)
    assert stopped_and_resumed(cfg, steps_per_epoch + 2) == reference


@pytest.mark.parametrize("name", ["vbpr", "lattice"])
def test_group_dro_reweights_the_multimodal_pairwise_loss(name, tmp_path):
    """VBPR and LATTICE hand the batch to the DRO reduction: group DRO (popularity groups) gives the DRO objective
    of the batch's per-sample BPR, not the mean (it used to fail on a missing batch)."""
    raw = {**MULTIMODAL, "output_dir": str(tmp_path / "runs"), "model": {"name": name, "embedding_dim": 8},
           "dro": {"enabled": True, "groups": "popularity", "num_groups": 3, "temperature": 0.1}}
    trainer = Trainer(build_config(raw))
    model, seen = trainer.model, {}
    model.reduction.register_forward_hook(lambda module, args, out: seen.update(per_sample=args[0].detach(),
                                                                                batch=args[1]))
    batch = next(iter(trainer.batches()))
    bpr = model.loss(batch)["bpr"]
    assert seen["batch"] is batch and torch.isfinite(bpr)
    groups = model.reduction.groups(batch)
    group_means = torch.stack([seen["per_sample"][groups == g].mean() for g in torch.unique(groups)])
    # softmax(L_g / tau) weights put more than the uniform share on the worse groups
    assert group_means.mean() + 1e-6 < float(bpr.detach()) <= group_means.max() + 1e-6
