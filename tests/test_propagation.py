"""NormalizedAdjacency and the propagation backends against hand-computed D^-1/2 A D^-1/2 on a tiny graph."""
from math import sqrt

import numpy as np
import pytest
import torch

from graphrec.graph.adjacency import NormalizedAdjacency
from graphrec.graph import propagate
from graphrec.graph.propagate import BACKENDS, propagate_layers, spmm, weighted_propagation

torch.set_num_threads(1)

# 3 users, 4 items; nodes: u0=0, u1=1, u2=2, i0=3, i1=4, i2=5, i3=6 (i3 has no edge).
# Edges: u0-i0, u0-i1, u1-i0, u1-i1, u1-i2, u2-i1.
# Degrees: u0=2, u1=3, u2=1, i0=2, i1=3, i2=1, i3=0.
USERS = [0, 0, 1, 1, 1, 2]
ITEMS = [0, 1, 0, 1, 2, 1]
NUM_USERS, NUM_ITEMS, NUM_NODES = 3, 4, 7


def hand_adjacency() -> torch.Tensor:
    """D^-1/2 A D^-1/2 written out entry by entry."""
    entries = {
        (0, 3): 1 / sqrt(2 * 2),  # u0-i0
        (0, 4): 1 / sqrt(2 * 3),  # u0-i1
        (1, 3): 1 / sqrt(3 * 2),  # u1-i0
        (1, 4): 1 / sqrt(3 * 3),  # u1-i1
        (1, 5): 1 / sqrt(3 * 1),  # u1-i2
        (2, 4): 1 / sqrt(1 * 3),  # u2-i1
    }
    dense = torch.zeros(NUM_NODES, NUM_NODES, dtype=torch.float64)
    for (r, c), v in entries.items():
        dense[r, c] = v
        dense[c, r] = v
    return dense


def tiny_adj() -> NormalizedAdjacency:
    return NormalizedAdjacency.from_numpy(np.array(USERS), np.array(ITEMS), NUM_USERS, NUM_ITEMS)


def coo_dense(adj: NormalizedAdjacency) -> torch.Tensor:
    """Dense matrix from the COO rows/cols/values the edge-wise backends use."""
    dense = torch.zeros(adj.num_nodes, adj.num_nodes, dtype=torch.float64)
    dense.index_put_((adj.row, adj.col), adj.values.double(), accumulate=True)
    return dense


def random_adj(num_users=20, num_items=30, num_edges=120, seed=0) -> NormalizedAdjacency:
    rng = np.random.default_rng(seed)
    keys = np.unique(rng.integers(0, num_users * num_items, num_edges))
    return NormalizedAdjacency.from_numpy(keys // num_items, keys % num_items, num_users, num_items)


def test_dense_matches_hand_computed():
    adj = tiny_adj()
    expected = hand_adjacency()
    assert adj.num_nodes == 7 and adj.nnz == 12
    assert torch.allclose(adj.csr.to_dense().double(), expected, atol=1e-7)
    assert torch.allclose(coo_dense(adj), expected, atol=1e-7)
    assert adj.degree.tolist() == [2, 3, 1, 2, 3, 1, 0]
    assert torch.isfinite(adj.values).all()


def test_symmetric():
    for adj in (tiny_adj(), random_adj()):
        dense = adj.csr.to_dense()
        assert torch.equal(dense, dense.t())
        assert torch.equal(coo_dense(adj), coo_dense(adj).t())


def test_lightgcn_two_layers_hand_computed():
    adj = tiny_adj()
    x0 = torch.zeros(NUM_NODES, 2)
    x0[0, 0] = 1.0  # column 0: one-hot u0
    x0[5, 1] = 1.0  # column 1: one-hot i2 ...
    x0[6, 1] = 2.0  # ... plus 2 on the isolated i3
    out = weighted_propagation(adj, x0, [1 / 3, 1 / 3, 1 / 3]).double()
    # column 0: A x0 = {i0: 1/2, i1: 1/sqrt6}; A^2 x0 = {u0: 1/4 + 1/6, u1: 1/(2 sqrt6) + 1/(3 sqrt6), u2: 1/sqrt18}
    col0 = [(1 + 1 / 4 + 1 / 6) / 3, (1 / (2 * sqrt(6)) + 1 / (3 * sqrt(6))) / 3, (1 / sqrt(18)) / 3,
            (1 / 2) / 3, (1 / sqrt(6)) / 3, 0.0, 0.0]
    # column 1: A x0 = {u1: 1/sqrt3}; A^2 x0 = {i0: 1/sqrt18, i1: 1/(3 sqrt3), i2: 1/3}; i3 keeps only w0 * 2
    col1 = [0.0, (1 / sqrt(3)) / 3, 0.0, (1 / sqrt(18)) / 3, (1 / (3 * sqrt(3))) / 3, (1 + 1 / 3) / 3, 2 / 3]
    expected = torch.tensor([col0, col1], dtype=torch.float64).t()
    assert torch.allclose(out, expected, atol=1e-6)
    for backend in BACKENDS:
        layers = propagate_layers(adj, x0, 2, backend)
        assert torch.allclose(torch.stack(layers).mean(0).double(), expected, atol=1e-6)


def _values_and_grad(fn, x0, probe):
    x = x0.clone().requires_grad_(True)
    out = fn(x)
    (out * probe[:out.shape[0]]).sum().backward()
    return out.detach(), x.grad


def test_backends_agree_values_and_gradients():
    torch.manual_seed(0)
    adj = random_adj()
    x0 = torch.randn(adj.num_nodes, 5)
    probe = torch.randn(adj.num_nodes, 5)
    dense = adj.csr.to_dense()
    ref_out = dense @ dense @ x0
    ref_grad = dense.t() @ dense.t() @ probe  # d/dx sum(probe * A A x)
    for backend in BACKENDS:
        out, grad = _values_and_grad(lambda x: spmm(adj, spmm(adj, x, backend), backend), x0, probe)
        assert torch.allclose(out, ref_out, atol=1e-5), backend
        assert torch.allclose(grad, ref_grad, atol=1e-5), backend
    weights = [0.4, 0.3, 0.2, 0.1]
    results = {b: _values_and_grad(lambda x: weighted_propagation(adj, x, weights, backend=b), x0, probe)
               for b in BACKENDS}
    for backend in BACKENDS[1:]:
        assert torch.allclose(results[backend][0], results["torch"][0], atol=1e-5), backend
        assert torch.allclose(results[backend][1], results["torch"][1], atol=1e-5), backend


@pytest.mark.parametrize("transposed_block", [0.0, 1.0])  # backward's first product: full / row block transposed
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("weights", [[1.0], [0.5, 0.5], [1 / 4] * 4, [0.1, 0.2, 0.3, 0.4]])
def test_weighted_propagation_matches_stacked_layers(backend, weights, transposed_block, monkeypatch):
    monkeypatch.setattr(propagate, "TRANSPOSED_BLOCK_MAX_FRACTION", transposed_block)
    torch.manual_seed(1)
    adj = random_adj(seed=1)
    x0 = torch.randn(adj.num_nodes, 4)
    probe_full = torch.randn(adj.num_nodes, 4)
    num_layers = len(weights) - 1

    def stacked(x, rows=None):
        layers = propagate_layers(adj, x, num_layers, backend)
        out = sum(w * h for w, h in zip(weights, layers))
        return out if rows is None else out[rows]

    ref_out, ref_grad = _values_and_grad(stacked, x0, probe_full)
    out, grad = _values_and_grad(lambda x: weighted_propagation(adj, x, weights, backend=backend), x0, probe_full)
    assert torch.allclose(out, ref_out, atol=1e-5)
    assert torch.allclose(grad, ref_grad, atol=1e-5)

    # rows: unsorted, with duplicates, a user and items, and the last node
    rows = torch.tensor([3, 25, 3, 0, adj.num_nodes - 1, 25, 3])
    probe_rows = torch.randn(len(rows), 4)
    ref_out, ref_grad = _values_and_grad(lambda x: stacked(x, rows), x0, probe_rows)
    out, grad = _values_and_grad(lambda x: weighted_propagation(adj, x, weights, rows=rows, backend=backend),
                                 x0, probe_rows)
    assert out.shape == (len(rows), 4)
    assert torch.allclose(out, ref_out, atol=1e-5)
    assert torch.allclose(grad, ref_grad, atol=1e-5)
    assert torch.equal(out[0], out[2]) and torch.equal(out[1], out[5])


def test_drop_edges_zero_is_identity():
    adj = random_adj()
    same = adj.drop_edges(0.0, torch.Generator().manual_seed(0))
    assert same.nnz == adj.nnz
    assert torch.equal(same.csr.to_dense(), adj.csr.to_dense())


def test_drop_edges_symmetric_and_renormalized():
    adj = random_adj(num_edges=200, seed=3)
    dropped = adj.drop_edges(0.5, torch.Generator().manual_seed(0))
    kept = len(dropped.users)
    assert 0 < kept < len(adj.users)
    assert dropped.nnz == 2 * kept
    dense = dropped.csr.to_dense().double()
    assert torch.equal(dense, dense.t())
    # every kept edge was an edge before
    before = set(zip(adj.users.tolist(), adj.items.tolist()))
    after = list(zip(dropped.users.tolist(), dropped.items.tolist()))
    assert set(after) <= before
    # the values are 1/sqrt(d_u d_i) with the degrees of the kept subgraph, not the original one
    user_deg = np.bincount(dropped.users.numpy(), minlength=adj.num_users)
    item_deg = np.bincount(dropped.items.numpy(), minlength=adj.num_items)
    expected = torch.zeros_like(dense)
    for u, i in after:
        value = 1 / sqrt(user_deg[u] * item_deg[i])
        expected[u, adj.num_users + i] = expected[adj.num_users + i, u] = value
    assert torch.allclose(dense, expected, atol=1e-6)
    assert not torch.allclose(dense[dense != 0], adj.csr.to_dense().double()[dense != 0])
    # different generators draw different subgraphs; the same one draws the same
    again = adj.drop_edges(0.5, torch.Generator().manual_seed(0))
    other = adj.drop_edges(0.5, torch.Generator().manual_seed(1))
    assert torch.equal(again.csr.to_dense(), dropped.csr.to_dense())
    assert not torch.equal(other.csr.to_dense(), dropped.csr.to_dense())


def test_row_block_equals_dense_rows():
    for adj in (tiny_adj(), random_adj()):
        dense = adj.csr.to_dense()
        nodes = torch.tensor([4, 0, 6, 4, adj.num_nodes - 1, 2])
        block = adj.row_block(nodes)
        assert block.shape == (len(nodes), adj.num_nodes)
        assert torch.equal(block.to_dense(), dense[nodes])
        x = torch.randn(adj.num_nodes, 3)
        assert torch.allclose(block @ x, dense[nodes] @ x, atol=1e-6)


def test_fused_perturbation_matches_stacked_layers():
    """SimGCL-style sign-aligned noise: fused values and gradients equal the autograd layer stack."""
    adj = random_adj(seed=3)
    gen = torch.Generator().manual_seed(0)
    noise = [torch.rand(adj.num_nodes, 4, generator=gen) * 0.1 for _ in range(3)]

    def make_perturb():
        calls = iter(noise)
        return lambda h: torch.sign(h).detach() * next(calls)

    x0 = torch.randn(adj.num_nodes, 4, generator=gen, requires_grad=True)
    probe = torch.randn(adj.num_nodes, 4, generator=gen)
    fused = weighted_propagation(adj, x0, [0.25] * 4, perturb=make_perturb())
    (fused_grad,) = torch.autograd.grad((fused * probe).sum(), x0)
    layers = propagate_layers(adj, x0, 3, perturb=make_perturb())
    stacked = sum(0.25 * layer for layer in layers)
    (stacked_grad,) = torch.autograd.grad((stacked * probe).sum(), x0)
    assert torch.allclose(fused, stacked, atol=1e-6)
    assert torch.allclose(fused_grad, stacked_grad, atol=1e-6)
    unperturbed = weighted_propagation(adj, x0, [0.25] * 4)
    assert not torch.allclose(fused, unperturbed, atol=1e-3)


@pytest.mark.parametrize("rows", [None, [0, 3, 3, 10, 15]])
@pytest.mark.parametrize("extra", [(1,), (0, 2), (3,), (3, 1)])
@pytest.mark.parametrize("perturbed", [False, True])
def test_extra_layers_equal_the_layer_stack_in_value_and_gradient(rows, extra, perturbed):
    """XSimGCL's intermediate layers from the fused pass: values and gradients equal the autograd layer stack."""
    torch.manual_seed(0)
    nu, ni = 7, 9
    keys = torch.unique(torch.randint(0, nu, (30,)) * ni + torch.randint(0, ni, (30,)))
    adj = NormalizedAdjacency(keys // ni, keys % ni, nu, ni)
    weights = [0.25, 0.25, 0.25, 0.25]
    rows = None if rows is None else torch.tensor(rows)
    perturb = (lambda h: 0.1 * torch.sign(h).detach()) if perturbed else None
    pick = (lambda t: t) if rows is None else (lambda t: t[rows])  # noqa: E731
    x = torch.randn(nu + ni, 4, requires_grad=True)
    out, layers = weighted_propagation(adj, x, weights, rows, perturb=perturb, extra_layers=extra)
    seed_out, seeds = torch.randn_like(out), [torch.randn_like(layer) for layer in layers]
    grad = torch.autograd.grad((out * seed_out).sum() + sum((l * g).sum() for l, g in zip(layers, seeds)), x)[0]
    x_ref = x.detach().clone().requires_grad_(True)
    stack = propagate_layers(adj, x_ref, 3, perturb=perturb)
    ref = sum(w * pick(layer) for w, layer in zip(weights, stack))
    ref_layers = [pick(stack[j]) for j in extra]
    ref_grad = torch.autograd.grad((ref * seed_out).sum() + sum((l * g).sum() for l, g in zip(ref_layers, seeds)),
                                   x_ref)[0]
    assert torch.allclose(out, ref, atol=1e-5)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(layers, ref_layers))
    assert torch.allclose(grad, ref_grad, atol=1e-5)


@pytest.mark.parametrize("rows", [None, [0, 3, 3, 10, 15]])
@pytest.mark.parametrize("num_layers", [0, 1, 3])
def test_views_equal_separate_perturbed_passes_in_value_and_gradient(rows, num_layers):
    """SimGCL's views=2: the clean pass and two noisy ones side by side equal three autograd layer stacks, the
    views' noise drawn in the same order, and the summed gradient equals the stacks' (one backward of width d)."""
    torch.manual_seed(0)
    nu, ni, d = 7, 9, 4
    keys = torch.unique(torch.randint(0, nu, (30,)) * ni + torch.randint(0, ni, (30,)))
    adj = NormalizedAdjacency(keys // ni, keys % ni, nu, ni)
    weights = [1 / (num_layers + 1)] * (num_layers + 1)
    rows = None if rows is None else torch.tensor(rows)
    pick = (lambda t: t) if rows is None else (lambda t: t[rows])  # noqa: E731
    noise = torch.rand(num_layers, nu + ni, 2, d)             # noise[k - 1, node, view]

    def layer_noise(k, copies):
        """The views' (m, 2, d) noise of layer k, at the rows the propagation computes."""
        table = noise[k - 1] if copies.shape[0] == nu + ni else noise[k - 1][rows]
        return 0.1 * torch.sign(copies) * table

    calls = iter(range(1, num_layers + 1))
    x = torch.randn(nu + ni, d, requires_grad=True)
    out = weighted_propagation(adj, x, weights, rows, perturb=lambda c: layer_noise(next(calls), c), views=2)
    probe = torch.randn_like(out)
    grad = torch.autograd.grad((out * probe).sum(), x)[0]

    x_ref = x.detach().clone().requires_grad_(True)
    clean = propagate_layers(adj, x_ref, num_layers)
    parts = [sum(w * pick(h) for w, h in zip(weights, clean))]
    for view in range(2):
        layers = [x_ref]
        for k in range(1, num_layers + 1):
            h = spmm(adj, layers[-1])
            layers.append(h + 0.1 * torch.sign(h).detach() * noise[k - 1, :, view])
        parts.append(sum(w * pick(h) for w, h in zip(weights, layers)))
    ref = torch.cat(parts, 1)
    ref_grad = torch.autograd.grad((ref * probe).sum(), x_ref)[0]
    assert out.shape == (len(pick(x)), 3 * d)
    assert torch.allclose(out, ref, atol=1e-5)
    assert torch.allclose(grad, ref_grad, atol=1e-5)
    if num_layers:
        assert not torch.allclose(out[:, d:2 * d], out[:, :d], atol=1e-3)       # the views are perturbed
    with pytest.raises(ValueError, match="cannot be combined with extra_layers"):
        weighted_propagation(adj, x, weights, rows, views=2, extra_layers=(0,))
