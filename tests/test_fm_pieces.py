"""FM-family nn pieces and GEM pieces: identities, hand-computed values and sampling mechanisms."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from graphrec.data.fields import FieldRows, FieldSpace
from graphrec.errors import GraphrecError
from graphrec.models.fields import MLP, AttentionInteraction, FieldEmbedding, bi_interaction, fm_interaction
from graphrec.models.gem import (Block, GemEmbedding, GraphSageMean, NeighborSampler,
                                 feature_cooccurrence_graph)


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- FM pieces

def test_fm_identity_equals_explicit_double_sum():
    emb = torch.randn(5, 6, 4, generator=generator(), dtype=torch.float64)
    explicit = torch.zeros(5, dtype=torch.float64)
    pairwise = torch.zeros(5, 4, dtype=torch.float64)
    for i in range(6):
        for j in range(i + 1, 6):
            explicit += (emb[:, i] * emb[:, j]).sum(-1)
            pairwise += emb[:, i] * emb[:, j]
    torch.testing.assert_close(fm_interaction(emb), explicit)
    torch.testing.assert_close(bi_interaction(emb), pairwise)


def test_field_embedding_scales_by_values_and_sums_the_linear_term():
    layer = FieldEmbedding(num_features=4, dim=2, init_std=0.1)
    with torch.no_grad():
        layer.bias.fill_(0.5)
        layer.linear.copy_(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    features = torch.tensor([[0, 3], [1, 2]])
    values = torch.tensor([[1.0, 0.5], [2.0, 0.0]])
    emb, linear = layer(features, values)
    torch.testing.assert_close(linear, torch.tensor([0.5 + 1 + 2, 0.5 + 4 + 0]))
    torch.testing.assert_close(emb[0, 1], layer.embedding[3] * 0.5)
    assert emb.shape == (2, 2, 2) and (emb[1, 1] == 0).all()
    vectors = torch.ones(2, 2, 2)
    replaced, _ = layer(features, values, vectors=vectors)
    torch.testing.assert_close(replaced[:, :, 0], values)


def test_afm_attention_weights_sum_to_one_and_weight_the_pair_products():
    afm = AttentionInteraction(dim=3, attn_dim=5)
    emb = torch.randn(4, 5, 3, generator=generator(1))
    pairs = afm.pair_products(emb)
    assert pairs.shape == (4, 10, 3)
    torch.testing.assert_close(pairs[:, 0], emb[:, 0] * emb[:, 1])
    torch.testing.assert_close(pairs[:, -1], emb[:, 3] * emb[:, 4])
    weights = afm.weights(pairs)
    torch.testing.assert_close(weights.sum(1), torch.ones(4))
    assert (weights > 0).all() and weights.std() > 0
    expected = ((weights.unsqueeze(-1) * pairs).sum(1) * afm.projection.weight[0]).sum(-1)
    torch.testing.assert_close(afm(emb), expected)


def test_mlp_maps_to_one_output_per_row():
    mlp = MLP(6, [8, 4], dropout=0.5)
    assert mlp(torch.randn(3, 6)).shape == (3,)
    linear = MLP(2, [], dropout=0.0)
    with torch.no_grad():
        linear.layers[0].weight.copy_(torch.tensor([[2.0, -1.0]]))
        linear.layers[0].bias.fill_(0.5)
    torch.testing.assert_close(linear(torch.tensor([[1.0, 3.0]])), torch.tensor([2 - 3 + 0.5]))


# ---------------------------------------------------------------- GEM feature graph

SPACE = FieldSpace(num_features=6, field_of_feature=np.array([0, 0, 1, 1, 2, 2]), field_names=["u", "i", "c"])


def test_feature_graph_counts_positive_rows_only():
    rows = FieldRows(features=np.array([[0, 2, 4], [0, 2, 5], [1, 3, 5], [0, 3, 4]]),
                     values=np.array([[1, 1, 1], [1, 1, 1], [1, 1, 1], [1, 1, 1]], dtype=np.float32),
                     label=np.array([1, 1, -1, 0], dtype=np.float32))  # rows 2 and 3 are negatives
    graph = feature_cooccurrence_graph(rows, SPACE).toarray()
    expected = np.zeros((6, 6))
    for a, b, c in ([0, 2, 4], [0, 2, 5]):
        for x, y in ((a, b), (a, c), (b, c)):
            expected[x, y] += 1
            expected[y, x] += 1
    np.testing.assert_array_equal(graph, expected)
    assert graph[1].sum() == 0 and graph[3].sum() == 0  # features seen only in negatives have no edges
    assert graph[0, 2] == 2


def test_feature_graph_skips_features_with_zero_value():
    rows = FieldRows(np.array([[0, 2, 4]]), np.array([[1, 0, 1]], dtype=np.float32), np.array([1.0], dtype=np.float32))
    graph = feature_cooccurrence_graph(rows, SPACE)
    assert graph.nnz == 2 and graph[0, 4] == 1 and graph[4, 0] == 1


# ---------------------------------------------------------------- neighbour sampling

def star_graph() -> sp.csr_matrix:
    """Node 0 linked to 1 (count 1) and 2 (count 9); node 3 linked to 1; node 4 isolated."""
    dense = np.zeros((5, 5), dtype=np.float32)
    for a, b, w in ((0, 1, 1), (0, 2, 9), (3, 1, 1)):
        dense[a, b] = dense[b, a] = w
    return sp.csr_matrix(dense)


def test_sampler_draws_real_neighbours_and_masks_isolated_nodes():
    sampler = NeighborSampler(star_graph(), [4, 3])
    seeds = torch.tensor([0, 4])
    sampler.resample(generator())
    blocks = sampler.sample(seeds)
    assert len(blocks) == 2
    outer, inner = blocks
    assert inner.num_dst == 2 and torch.equal(inner.src_nodes[:2], seeds)  # the seeds lead every block
    assert torch.equal(outer.src_nodes[:len(inner.src_nodes)], inner.src_nodes)
    assert outer.num_dst == len(inner.src_nodes)
    neighbours = {a: set(np.flatnonzero(row)) for a, row in enumerate(star_graph().toarray())}
    for block in blocks:
        for dst in range(block.num_dst):
            node = int(block.src_nodes[dst])
            picked = set(block.src_nodes[block.neighbors[dst][block.mask[dst]]].tolist())
            assert picked <= neighbours[node]
            assert block.mask[dst].all() == bool(neighbours[node])
    assert inner.neighbors.shape == (2, 4) and not inner.mask[1].any()


def test_sampler_is_seeded_fixed_within_an_epoch_and_redrawn_on_a_continued_generator():
    sampler = NeighborSampler(sp.csr_matrix(np.ones((30, 30)) - np.eye(30)), [5])
    seeds = torch.arange(10)

    def drawn(block):
        return block.src_nodes[block.neighbors]

    sampler.resample(generator(3))
    first = drawn(sampler.sample(seeds)[0])
    assert torch.equal(drawn(sampler.sample(seeds)[0]), first)  # the same draw until the next resample
    assert torch.equal(drawn(sampler.sample(seeds[3:5])[0]), first[3:5])  # per node, whatever the batch
    sampler.resample(generator(3))
    assert torch.equal(drawn(sampler.sample(seeds)[0]), first)
    sampler.resample(generator(3))
    gen = generator(3)
    sampler.resample(gen)
    sampler.resample(gen)
    assert not torch.equal(drawn(sampler.sample(seeds)[0]), first)
    assert set(sampler.state_dict()) == {"draw0"}  # the draw is saved with the parameters, the graph is not


@pytest.mark.parametrize("weighted, share_of_2", [(False, 0.5), (True, 0.9)])
def test_sampler_is_uniform_or_follows_counts(weighted, share_of_2):
    sampler = NeighborSampler(star_graph(), [1], weighted=weighted)
    drawn, has = sampler.neighbors(torch.tensor([0]), 20000, generator(7))
    assert has.all()
    assert abs((drawn == 2).float().mean().item() - share_of_2) < 0.02


def test_sampler_draws_afresh_per_call_from_a_given_generator():
    sampler = NeighborSampler(star_graph(), [6, 2])
    neighbours = {a: set(np.flatnonzero(row)) for a, row in enumerate(star_graph().toarray())}
    gen = generator(5)
    first = sampler.sample(torch.tensor([0, 3, 4]), gen)
    second = sampler.sample(torch.tensor([0, 3, 4]), gen)
    again = sampler.sample(torch.tensor([0, 3, 4]), generator(5))
    for blocks in (first, second):
        for block in blocks:
            for dst in range(block.num_dst):
                node = int(block.src_nodes[dst])
                picked = set(block.src_nodes[block.neighbors[dst][block.mask[dst]]].tolist())
                assert picked <= neighbours[node] and block.mask[dst].all() == bool(neighbours[node])
    drawn = [b[-1].src_nodes[b[-1].neighbors] for b in (first, second, again)]
    assert not torch.equal(drawn[0], drawn[1]) and torch.equal(drawn[0], drawn[2])


def test_sampler_refuses_empty_fanout():
    with pytest.raises(GraphrecError, match="gem.fanouts"):
        NeighborSampler(star_graph(), [0])


# ---------------------------------------------------------------- g(.)

def path_block() -> tuple[torch.Tensor, list[Block]]:
    """Seeds [5, 7]: 5's sampled neighbours are 8, 8; 7 has none. One hop."""
    block = Block(src_nodes=torch.tensor([5, 7, 8]), num_dst=2,
                  neighbors=torch.tensor([[2, 2], [1, 1]]), mask=torch.tensor([[True, True], [False, False]]))
    return torch.tensor([5, 7]), [block]


def test_weightless_mean_averages_layers_and_keeps_lonely_nodes():
    table = torch.randn(10, 3, generator=generator(2))
    seeds, blocks = path_block()
    out = GraphSageMean(3, 1, "mean")(table, seeds, blocks)
    torch.testing.assert_close(out[0], (table[5] + table[8]) / 2)  # mean of layer 0 (itself) and layer 1 (8)
    torch.testing.assert_close(out[1], table[7])


def test_sage_layer_concatenates_self_and_neighbour_mean():
    table = torch.randn(10, 3, generator=generator(2))
    seeds, blocks = path_block()
    sage = GraphSageMean(3, 1, "sage")
    out = sage(table, seeds, blocks)
    layer = sage.layers[0]
    torch.testing.assert_close(out[0], layer(torch.cat([table[5], table[8]])))
    torch.testing.assert_close(out[1], layer(torch.cat([table[7], torch.zeros(3)])))
    assert layer.bias is None  # the spec's W [h || mean]: a zero table stays zero, no shared offset
    assert sage(torch.zeros(10, 3), seeds, blocks).abs().sum() == 0


def test_gem_with_zero_layers_equals_the_plain_embedding():
    fields = FieldEmbedding(6, 4, init_std=0.1)
    features, values = torch.tensor([[0, 2, 4], [1, 3, 4]]), torch.ones(2, 3)
    for aggregator in ("sage", "mean"):
        gem = GemEmbedding(star_graph(), 4, fanouts=[], num_layers=0, aggregator=aggregator)
        vectors = gem(fields.embedding, features)
        plain, _ = fields(features, values)
        high, _ = fields(features, values, vectors=vectors)
        assert torch.equal(high, plain)
        assert torch.equal(fm_interaction(high), fm_interaction(plain))


def test_gem_touches_only_the_sampled_subgraph_and_checks_its_keys():
    dense = np.zeros((8, 8), dtype=np.float32)
    for a, b in ((0, 1), (1, 2), (2, 3), (5, 6)):
        dense[a, b] = dense[b, a] = 1
    gem = GemEmbedding(sp.csr_matrix(dense), 4, fanouts=[3, 3], num_layers=2)
    table = torch.randn(8, 4, requires_grad=True)
    gem.resample(generator())
    out = gem(table, torch.tensor([[0, 5], [0, 0]]))
    assert out.shape == (2, 2, 4) and torch.equal(out[1, 0], out[0, 0])
    out.sum().backward()
    touched = set(torch.nonzero(table.grad.abs().sum(1)).ravel().tolist())
    assert touched == {0, 1, 2, 5, 6}  # two hops from 0 and 5; 3, 4 and 7 are out of reach
    with pytest.raises(GraphrecError, match="gem.fanouts .* has 1 entries but gem.layers is 2"):
        GemEmbedding(star_graph(), 4, fanouts=[10], num_layers=2)
    with pytest.raises(GraphrecError, match="gem.aggregator 'max'"):
        GraphSageMean(4, 1, "max")


@pytest.mark.parametrize("weighted", [False, True])
def test_gem_evaluates_over_every_neighbour_whatever_the_draw(weighted):
    table = torch.randn(5, 3, generator=generator(4))
    mean_of_0 = (table[1] + 9 * table[2]) / 10 if weighted else (table[1] + table[2]) / 2  # star: 0 - 1 (1), 2 (9)
    sage = GemEmbedding(star_graph(), 3, fanouts=[2], num_layers=1, weighted=weighted, eval_neighbors="all").eval()
    layer = sage.encoder.layers[0]
    out = sage(table, torch.tensor([[0, 4]]))[0]
    torch.testing.assert_close(out[0], layer(torch.cat([table[0], mean_of_0])))
    torch.testing.assert_close(out[1], layer(torch.cat([table[4], torch.zeros(3)])))  # isolated: no neighbour
    sage.resample(generator(9))
    torch.testing.assert_close(sage(table, torch.tensor([[0, 4]]))[0], out)  # the draw does not matter
    mean = GemEmbedding(star_graph(), 3, fanouts=[1, 1], num_layers=2, aggregator="mean", weighted=weighted,
                        eval_neighbors="all").eval()
    hop1 = torch.stack([mean_of_0, (table[0] + table[3]) / 2, table[0], table[1], table[4]])
    hop2_of_0 = (hop1[1] + 9 * hop1[2]) / 10 if weighted else (hop1[1] + hop1[2]) / 2
    torch.testing.assert_close(mean(table, torch.tensor([[0]]))[0, 0], (table[0] + hop1[0] + hop2_of_0) / 3)


def test_gem_full_table_is_recomputed_after_a_fused_optimizer_step_and_unused_in_training():
    table = torch.nn.Parameter(torch.randn(5, 3, generator=generator(5)))
    gem = GemEmbedding(star_graph(), 3, fanouts=[2], num_layers=1, eval_neighbors="all").eval()
    with torch.no_grad():
        before = gem(table, torch.tensor([[0]])).clone()
    gem.train()
    table.grad = torch.ones_like(table)
    torch.optim.Adam([table], lr=0.5, fused=True).step()  # in place, without bumping the table's version
    gem.eval()
    with torch.no_grad():
        assert not torch.allclose(gem(table, torch.tensor([[0]])), before)
        torch.testing.assert_close(gem(table, torch.tensor([[0]])), gem.encoder.full(
            table, gem.sampler.mean_adjacency(), gem.sampler.has_neighbors)[[0]].unsqueeze(0))
    before = gem(table, torch.tensor([[0]]))  # with grad: computed afresh, differentiable
    before.sum().backward()
    assert table.grad is not None
    gem.train()
    gem.resample(generator(1))
    draw = GemEmbedding(star_graph(), 3, fanouts=[2], num_layers=1)
    draw.load_state_dict(gem.state_dict())
    draw.resample(generator(1))
    torch.testing.assert_close(gem(table, torch.tensor([[0]])), draw(table, torch.tensor([[0]])))  # trains on draws


def test_gem_fm_fits_a_planted_fm_target():
    torch.manual_seed(0)
    num_features, rows = 12, 256
    features = torch.stack([torch.randint(0, 4, (rows,)), torch.randint(4, 8, (rows,)),
                            torch.randint(8, 12, (rows,))], dim=1)
    truth = torch.randn(num_features, 3)
    target = fm_interaction(truth[features])
    positives = FieldRows(features.numpy(), np.ones((rows, 3), np.float32), np.ones(rows, np.float32))
    space = FieldSpace(num_features, np.repeat(np.arange(3), 4), ["a", "b", "c"])
    gem = GemEmbedding(feature_cooccurrence_graph(positives, space), 8, fanouts=[5], num_layers=1)
    fields = FieldEmbedding(num_features, 8, init_std=0.1)
    optimizer = torch.optim.Adam([*fields.parameters(), *gem.parameters()], lr=0.02)
    gen, losses = generator(), []
    for _ in range(150):
        gem.resample(gen)
        emb, linear = fields(features, torch.ones(rows, 3), vectors=gem(fields.embedding, features))
        loss = (linear + fm_interaction(emb) - target).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0]
