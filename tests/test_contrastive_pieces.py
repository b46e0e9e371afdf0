"""Shared pieces of graph contrastive learning: InfoNCE, the SGCL symmetric loss, the contrasted nodes,
graph views, SimGCL noise and MixGCF negatives, against hand-computed values and mechanisms."""
from math import exp, log, sqrt

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from graphrec.graph.adjacency import NormalizedAdjacency
from graphrec.graph.propagate import propagate_layers, weighted_propagation
from graphrec.graph.views import (edge_dropout_view, node_dropout_view, per_layer_edge_dropout,
                                  replace_rows_with_noise, sign_aligned_noise)
from graphrec.losses import contrast_nodes, info_nce, symmetric_contrastive
from graphrec.negatives import mixgcf_negatives

torch.set_num_threads(1)

# Tiny views: normalized rows of VIEW1 are (1,0), (0,1), (1,1)/sqrt2; of VIEW2 (1,0), (1,0), (0,-1).
VIEW1 = torch.tensor([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0]], dtype=torch.float64)
VIEW2 = torch.tensor([[1.0, 0.0], [5.0, 0.0], [0.0, -2.0]], dtype=torch.float64)
R = 1 / sqrt(2)
COSINE = [[1.0, 1.0, 0.0],  # COSINE[i][j] = cos(view1_i, view2_j), worked out by hand
          [0.0, 0.0, -1.0],
          [R, R, -R]]


def direct_symmetric(cos, t, q, lam, double_positive=True):
    """The per-row formula written out with plain floats, as the SGCL code computes it."""
    rows = []
    for i, row in enumerate(cos):
        p = exp(cos[i][i] / t)
        total = sum(exp(s / t) for s in row)
        denominator = p + total if double_positive else total
        rows.append(-p ** q / q + (lam * denominator) ** q / q)
    return sum(rows) / len(rows)


def test_info_nce_hand_values():
    # t = 0.5 so logits are 2 * cosine; row i: -2 s_ii + log sum_j exp(2 s_ij)
    expected = ((-2 + log(2 * exp(2) + 1))
                + (0 + log(2 + exp(-2)))
                + (sqrt(2) + log(2 * exp(sqrt(2)) + exp(-sqrt(2))))) / 3
    assert float(info_nce(VIEW1, VIEW2, 0.5)) == pytest.approx(expected, rel=1e-12)


def test_symmetric_contrastive_hand_values_and_variants():
    # q = 1, lam = 0.5, t = 0.5: row i is -p_i + 0.5 (p_i + S_i), S_i including p_i
    expected = ((-exp(2) + 0.5 * (3 * exp(2) + 1))
                + (-1 + 0.5 * (3 + exp(-2)))
                + (-exp(-sqrt(2)) + 0.5 * (2 * exp(sqrt(2)) + 2 * exp(-sqrt(2))))) / 3
    assert float(symmetric_contrastive(VIEW1, VIEW2, 0.5, 1.0, 0.5)) == pytest.approx(expected, rel=1e-12)
    # the code's q and lam, and the variants the paper may use instead
    got = symmetric_contrastive(VIEW1, VIEW2, 0.2, 0.01, 0.1)
    assert float(got) == pytest.approx(direct_symmetric(COSINE, 0.2, 0.01, 0.1), rel=1e-9)
    single = symmetric_contrastive(VIEW1, VIEW2, 0.2, 0.5, 0.1, double_positive=False)
    assert float(single) == pytest.approx(direct_symmetric(COSINE, 0.2, 0.5, 0.1, double_positive=False), rel=1e-9)
    transposed = [list(col) for col in zip(*COSINE)]
    both = symmetric_contrastive(VIEW1, VIEW2, 0.2, 0.5, 0.1, bidirectional=True)
    expected_both = (direct_symmetric(COSINE, 0.2, 0.5, 0.1) + direct_symmetric(transposed, 0.2, 0.5, 0.1)) / 2
    assert float(both) == pytest.approx(expected_both, rel=1e-9)
    assert float(both) != pytest.approx(float(symmetric_contrastive(VIEW1, VIEW2, 0.2, 0.5, 0.1)), rel=1e-3)


def test_symmetric_contrastive_small_q_limit_is_log_ratio_with_double_positive():
    g = torch.Generator().manual_seed(3)
    view1, view2 = torch.randn(6, 4, generator=g, dtype=torch.float64), torch.randn(6, 4, generator=g,
                                                                                      dtype=torch.float64)
    t, lam = 0.2, 0.1
    cos = F.normalize(view1, dim=1) @ F.normalize(view2, dim=1).t()
    p = torch.exp(cos.diagonal() / t)
    total = torch.exp(cos / t).sum(1)                      # includes p
    limit = float((-torch.log(p / (lam * (p + total)))).mean())
    errors = [abs(float(symmetric_contrastive(view1, view2, t, q, lam)) - limit) for q in (1e-2, 1e-4, 1e-7)]
    assert errors[0] > errors[1] > errors[2] and errors[2] < 1e-5
    # the limit is InfoNCE shifted by log(lam) and by the positive counted twice (log(1 + p/S)), not InfoNCE
    gap = log(lam) + float(torch.log1p(p / total).mean())
    assert limit == pytest.approx(float(info_nce(view1, view2, t)) + gap, rel=1e-12)
    # float32 keeps the digits at small q (expm1), and a tiny temperature does not overflow
    small_q = symmetric_contrastive(view1.float(), view2.float(), t, 1e-4, lam)
    assert float(small_q) == pytest.approx(limit, rel=1e-3)
    assert torch.isfinite(symmetric_contrastive(view1.float(), view2.float(), 0.005, 0.01, lam))


def noisy_pair_gradients(loss_fn, sigma, n=64, d=32, noisy=8):
    """Per-row gradient norms (noisy pairs, clean pairs) of loss_fn when the first `noisy` pairs' second view
    is the first view plus Gaussian noise of scale sigma (pure noise as sigma grows), rows of unit norm."""
    g = torch.Generator().manual_seed(0)
    base = F.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=1)
    noise = torch.randn(noisy, d, generator=g, dtype=torch.float64) / sqrt(d)
    second = base.clone()
    second[:noisy] = F.normalize(base[:noisy] + sigma * noise, dim=1)
    view1, view2 = base.clone().requires_grad_(), second.requires_grad_()
    loss_fn(view1, view2).backward()
    row_norms = torch.cat([view1.grad, view2.grad], 1).norm(dim=1)
    return float(row_norms[:noisy].mean()), float(row_norms[noisy:].mean())


def test_symmetric_loss_down_weights_pure_noise_pairs_where_infonce_fits_them_hardest():
    # On the unit sphere every gradient is bounded; what differs is where it goes. InfoNCE's weight on a pair's
    # positive is 1 - softmax_ii, largest when the views disagree, so its gradient on the noisy pairs grows with
    # the noise to its maximum. The symmetric loss weights it by p^q = exp(q s_ii / t): at q = 1 the gradient on
    # the noisy pairs falls as they become pure noise. At the code's q = 0.01 it behaves like InfoNCE.
    sigmas = (0.25, 1.0, 2.0, 4.0, 16.0)
    infonce = [noisy_pair_gradients(lambda a, b: info_nce(a, b, 0.2), s) for s in sigmas]
    sym_q1 = [noisy_pair_gradients(lambda a, b: symmetric_contrastive(a, b, 0.2, 1.0, 0.1), s) for s in sigmas]
    sym_code = [noisy_pair_gradients(lambda a, b: symmetric_contrastive(a, b, 0.2, 0.01, 0.1), s) for s in sigmas]
    noisy_infonce = [g[0] for g in infonce]
    assert all(later >= earlier for earlier, later in zip(noisy_infonce, noisy_infonce[1:]))
    assert noisy_infonce[-1] > 5 * noisy_infonce[0]
    noisy_q1 = [g[0] for g in sym_q1]
    assert all(later < earlier for earlier, later in zip(noisy_q1[1:], noisy_q1[2:]))
    assert noisy_q1[-1] < 0.3 * max(noisy_q1)
    # at pure noise: InfoNCE gives a noisy pair > 5x a clean pair's gradient, the symmetric loss (q = 1) < 2x
    assert infonce[-1][0] > 5 * infonce[-1][1]
    assert sym_q1[-1][0] < 2 * sym_q1[-1][1]
    assert sym_code[-1][0] > 5 * sym_code[-1][1]


def test_contrast_nodes_joint_and_separate():
    users, pos = torch.tensor([3, 1, 3]), torch.tensor([0, 2, 0])
    (joint,) = contrast_nodes(users, pos, num_users=4, joint=True)
    assert joint.tolist() == [1, 3, 4, 6]
    user_ids, item_ids = contrast_nodes(users, pos, num_users=4, joint=False)
    assert user_ids.tolist() == [1, 3] and item_ids.tolist() == [4, 6]


# A tiny graph: 3 users, 4 items, 7 edges.
USERS = torch.tensor([0, 0, 0, 1, 1, 2, 2])
ITEMS = torch.tensor([0, 1, 3, 1, 2, 2, 3])


def dense_normalized(users, items, num_users, num_items):
    """D^-1/2 A D^-1/2 of the bipartite graph, computed densely with numpy."""
    n = num_users + num_items
    a = np.zeros((n, n))
    a[users.numpy(), items.numpy() + num_users] = 1
    a[items.numpy() + num_users, users.numpy()] = 1
    degree = a.sum(1)
    inv_sqrt = np.where(degree > 0, 1 / np.sqrt(np.maximum(degree, 1)), 0)
    return inv_sqrt[:, None] * a * inv_sqrt[None, :]


def edge_set(view):
    return set(zip(view.users.tolist(), view.items.tolist()))


def assert_normalized_subgraph(view, adj):
    """The view holds a subset of adj's edges, and its matrix is the dense D^-1/2 A D^-1/2 of those edges."""
    assert edge_set(view) <= edge_set(adj)
    assert view.users.device == adj.users.device
    dense = view.csr.to_dense().numpy()
    np.testing.assert_allclose(dense, dense.T)
    np.testing.assert_allclose(dense, dense_normalized(view.users, view.items, adj.num_users, adj.num_items),
                               rtol=1e-6)


def test_edge_dropout_view_is_normalized_subgraph_and_seeded():
    adj = NormalizedAdjacency(USERS, ITEMS, 3, 4)
    view = edge_dropout_view(adj, 0.4, torch.Generator().manual_seed(1))
    assert_normalized_subgraph(view, adj)
    assert 0 < len(edge_set(view)) < 7
    again = edge_dropout_view(adj, 0.4, torch.Generator().manual_seed(1))
    assert edge_set(again) == edge_set(view)
    # the kept share is 1 - rate on a large graph
    pairs = torch.randperm(500 * 700, generator=torch.Generator().manual_seed(0))[:20000]
    big = NormalizedAdjacency(pairs // 700, pairs % 700, 500, 700)
    kept = edge_dropout_view(big, 0.1, torch.Generator().manual_seed(0)).users.numel()
    assert kept / 20000 == pytest.approx(0.9, abs=0.01)


def test_keep_edges_filters_the_csr_into_the_fresh_build():
    """A view filtered from the parent's sorted entries is the adjacency built (and sorted) from its edges."""
    pairs = torch.randperm(40 * 60, generator=torch.Generator().manual_seed(2))[:500]
    adj = NormalizedAdjacency(pairs // 60, pairs % 60, 40, 60)
    for seed in (0, 1):  # the entry -> edge map is built on the first call and reused
        keep = torch.rand(500, generator=torch.Generator().manual_seed(seed)) >= 0.3
        view = adj.keep_edges(keep)
        fresh = NormalizedAdjacency(adj.users[keep], adj.items[keep], 40, 60)
        for name in ("row", "col", "values", "crow", "degree"):
            assert torch.equal(getattr(view, name), getattr(fresh, name)), name
        assert torch.equal(view.csr.to_dense(), fresh.csr.to_dense())


def test_node_dropout_view_removes_every_edge_of_dropped_nodes():
    # complete bipartite graph: the kept edges must be exactly (kept users) x (kept items)
    num_users, num_items, rate = 5, 10, 0.4
    users = torch.arange(num_users).repeat_interleave(num_items)
    items = torch.arange(num_items).repeat(num_users)
    adj = NormalizedAdjacency(users, items, num_users, num_items)
    view = node_dropout_view(adj, rate, torch.Generator().manual_seed(2))
    kept_users, kept_items = set(view.users.tolist()), set(view.items.tolist())
    assert len(kept_users) == num_users - 2 and len(kept_items) == num_items - 4   # floor(0.4 * n) dropped
    assert edge_set(view) == {(u, i) for u in kept_users for i in kept_items}
    assert_normalized_subgraph(view, adj)
    assert view.degree[:num_users].count_nonzero() == 3
    other = node_dropout_view(adj, rate, torch.Generator().manual_seed(5))
    again = node_dropout_view(adj, rate, torch.Generator().manual_seed(2))
    assert edge_set(again) == edge_set(view) and edge_set(other) != edge_set(view)


def test_per_layer_edge_dropout_gives_independent_views():
    pairs = torch.randperm(30 * 40, generator=torch.Generator().manual_seed(0))[:300]   # distinct edges
    adj = NormalizedAdjacency(pairs // 40, pairs % 40, 30, 40)
    views = per_layer_edge_dropout(adj, 0.3, 3, torch.Generator().manual_seed(4))
    assert len(views) == 3
    for view in views:
        assert_normalized_subgraph(view, adj)
    assert edge_set(views[0]) != edge_set(views[1]) != edge_set(views[2])
    again = per_layer_edge_dropout(adj, 0.3, 3, torch.Generator().manual_seed(4))
    assert [edge_set(v) for v in again] == [edge_set(v) for v in views]


def test_sign_aligned_noise_norm_sign_and_seed():
    h = torch.tensor([[1.0, -2.0, 3.0], [-0.5, -0.1, 4.0], [2.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    noise = sign_aligned_noise(h, 0.1, torch.Generator().manual_seed(0))
    assert noise.shape == h.shape
    np.testing.assert_allclose(noise[:3].norm(dim=1).numpy(), [0.1, 0.1, 0.1], rtol=1e-6)
    assert torch.equal(torch.sign(noise[:2]), torch.sign(h[:2]))              # in h's orthant
    assert noise[2, 0] > 0 and noise[2, 1] > 0 and noise[2, 2] < 0             # a lone zero entry takes the + sign
    assert torch.equal(noise[3], torch.zeros(3))                              # an all-zero row (isolated node): none
    assert torch.equal(noise, sign_aligned_noise(h, 0.1, torch.Generator().manual_seed(0)))
    assert not torch.equal(noise, sign_aligned_noise(h, 0.1, torch.Generator().manual_seed(1)))


def test_replace_rows_with_noise_replaces_a_share_and_cuts_their_gradient():
    view = torch.randn(10, 3, generator=torch.Generator().manual_seed(0), requires_grad=True)
    noisy = replace_rows_with_noise(view, 0.35, torch.Generator().manual_seed(1))
    replaced = (noisy != view).any(1)
    assert int(replaced.sum()) == 3                                           # floor(0.35 * 10)
    assert torch.equal(noisy[~replaced], view[~replaced])
    noisy.sum().backward()
    assert torch.equal(view.grad, (~replaced).float().unsqueeze(1).expand(10, 3))  # no gradient to replaced rows
    again = replace_rows_with_noise(view, 0.35, torch.Generator().manual_seed(1))
    assert torch.equal(again, noisy)
    assert torch.equal(replace_rows_with_noise(view, 0.0, torch.Generator()), view)


def noise_perturb(seed):
    """SimGCL's perturb for the propagation, eps = 0.2, seeded."""
    generator = torch.Generator().manual_seed(seed)
    return lambda h: sign_aligned_noise(h, 0.2, generator)


def test_sign_aligned_noise_as_perturb_shifts_values_not_gradients():
    adj = NormalizedAdjacency(USERS, ITEMS, 3, 4)
    x0 = torch.randn(7, 4, generator=torch.Generator().manual_seed(0))
    probe = torch.arange(28.0).view(7, 4)
    grads, values = [], []
    for perturb in (None, noise_perturb(9)):
        x = x0.clone().requires_grad_()
        out = weighted_propagation(adj, x, [1 / 3] * 3, perturb=perturb)
        (out * probe).sum().backward()
        grads.append(x.grad)
        values.append(out.detach())
    layered = torch.stack(propagate_layers(adj, x0, 2, perturb=noise_perturb(9))).mean(0)
    assert torch.allclose(values[1], layered)                       # the same noise, fused or layer by layer
    assert (values[1] - values[0]).abs().max() > 0.01                # the noise moves the embeddings
    assert torch.allclose(grads[0], grads[1])                        # but is not differentiated


ROW_OF_EACH_CANDIDATE = torch.tensor([[0, 1, 2]])  # one sample whose 3 candidates are the table's rows 0, 1 and 2


def test_mixgcf_chooses_known_candidates_per_layer():
    # user along the first axis; the positive is zero there, so a candidate's score is (1 - alpha) * its first entry
    user = torch.tensor([[1.0, 0.0]])                                          # pooled (b, d)
    pos = torch.zeros(1, 2, 2)
    cand = torch.tensor([[[[10.0, 1.0], [-10.0, 2.0]],                         # candidate 0: best at layer 0
                          [[-10.0, 3.0], [-10.0, 4.0]],
                          [[0.0, 5.0], [10.0, 6.0]]]])                         # candidate 2: best at layer 1
    cand.requires_grad_()
    pos.requires_grad_()
    out = mixgcf_negatives(user, pos, cand.view(3, 2, 2), ROW_OF_EACH_CANDIDATE, torch.Generator().manual_seed(0))
    # entries lie on the segment alpha * pos + (1 - alpha) * chosen, alpha in (0, 1)
    chosen = torch.stack([cand[0, 0, 0], cand[0, 2, 1]]).detach()
    share = out.detach()[0] / chosen                                           # 1 - alpha, since pos = 0
    assert ((share > 0) & (share < 1)).all()
    assert share.unique().numel() == 4                                         # alpha drawn per entry (SGCL)
    out.sum().backward()
    grad_hit = torch.zeros_like(cand, dtype=torch.bool)
    grad_hit[0, 0, 0] = grad_hit[0, 2, 1] = True
    assert (cand.grad[grad_hit] > 0).all() and (cand.grad[~grad_hit] == 0).all()
    np.testing.assert_allclose((cand.grad.sum(1) + pos.grad).numpy(), np.ones((1, 2, 2)), rtol=1e-6)


def test_mixgcf_equals_the_whole_mix_differentiated_by_autograd():
    """The choice without autograd and the kept mix recomputed alone give the values and gradients of mixing every
    candidate with autograd and gathering the best (the plain form), for both mixings and a per-layer user."""
    gen = torch.Generator().manual_seed(3)
    table = torch.randn(12, 3, 4, generator=gen)
    pos_rows, candidates = torch.tensor([1, 5, 5, 7]), torch.randint(0, 12, (4, 6), generator=gen)
    for mix, user in (("element", torch.randn(4, 4, generator=gen)), ("layer", torch.randn(4, 3, 4, generator=gen))):
        leaves = [table.clone().requires_grad_(), table.clone().requires_grad_()]
        fast = mixgcf_negatives(user, leaves[0][pos_rows], leaves[0], candidates, torch.Generator().manual_seed(9),
                                mix)
        cand_layers, pos = leaves[1][candidates], leaves[1][pos_rows]
        shape = cand_layers.shape if mix == "element" else (4, 1, 3, 1)       # MixGCF: one alpha per sample, layer
        alpha = torch.rand(shape, generator=torch.Generator().manual_seed(9))
        mixed = alpha * pos.unsqueeze(1) + (1 - alpha) * cand_layers
        scores = (mixed * (user.unsqueeze(1) if user.dim() == 3 else user[:, None, None, :])).sum(-1)
        plain = mixed.gather(1, scores.argmax(1)[:, None, :, None].expand(4, 1, 3, 4)).squeeze(1)
        assert torch.equal(fast, plain)
        weights = torch.randn(4, 3, 4, generator=gen)
        (fast * weights).sum().backward()
        (plain * weights).sum().backward()
        assert torch.allclose(leaves[0].grad, leaves[1].grad, atol=1e-6) and leaves[0].grad.abs().sum() > 0


def mixing_weight(out, pos, chosen):
    """(b, L+1, d) alpha such that out = alpha * pos + (1 - alpha) * chosen, entrywise."""
    return (out.detach() - chosen) / (pos - chosen)


def test_mixgcf_user_per_layer_versus_pooled_and_layer_mixing():
    # with one alpha per sample and layer (MixGCF) candidates rank by user . candidate at every layer
    pos = torch.ones(1, 2, 2, requires_grad=True)
    cand = torch.tensor([[[[4.0, -3.0], [0.0, 0.0]],
                          [[0.0, 0.0], [-3.0, 4.0]],
                          [[2.0, 2.0], [2.0, 2.0]]]])
    per_layer_user = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]], requires_grad=True)   # (b, L+1, d)
    pooled_user = per_layer_user.detach().mean(1)                                     # (b, d) = (0.5, 0.5)
    # per-layer user: layer 0 scores 4, 0, 2 -> candidate 0; layer 1 scores 0, 4, 2 -> candidate 1
    table = cand.view(3, 2, 2)
    per_layer = mixgcf_negatives(per_layer_user, pos, table, ROW_OF_EACH_CANDIDATE, torch.Generator().manual_seed(0),
                                 mix="layer")
    alpha = mixing_weight(per_layer, pos, torch.stack([cand[:, 0, 0], cand[:, 1, 1]], 1))
    assert torch.allclose(alpha[..., 0], alpha[..., 1]) and ((alpha > 0) & (alpha < 1)).all()
    # pooled user: layer 0 scores 0.5, 0, 2 and layer 1 scores 0, 0.5, 2 -> candidate 2 at both
    pooled = mixgcf_negatives(pooled_user, pos, table, ROW_OF_EACH_CANDIDATE, torch.Generator().manual_seed(0),
                              mix="layer")
    alpha = mixing_weight(pooled, pos, cand[:, 2])
    assert torch.allclose(alpha[..., 0], alpha[..., 1]) and ((alpha > 0) & (alpha < 1)).all()
    per_layer.sum().backward()
    assert per_layer_user.grad is None                                 # the choice is not differentiated
    again = mixgcf_negatives(pooled_user, pos, table, ROW_OF_EACH_CANDIDATE, torch.Generator().manual_seed(0),
                             mix="layer")
    assert torch.equal(again, pooled)
    with pytest.raises(ValueError, match="mixing"):
        mixgcf_negatives(pooled_user, pos, table, ROW_OF_EACH_CANDIDATE, mix="hop")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_pieces_stay_on_cuda_with_a_cuda_generator():
    gen = torch.Generator(device="cuda").manual_seed(0)
    adj = NormalizedAdjacency(USERS, ITEMS, 3, 4).to("cuda")
    views = [edge_dropout_view(adj, 0.3, gen), node_dropout_view(adj, 0.3, gen),
             *per_layer_edge_dropout(adj, 0.3, 2, gen)]
    assert all(view.csr.device.type == "cuda" for view in views)
    h = torch.randn(7, 4, device="cuda", generator=gen)
    assert sign_aligned_noise(h, 0.1, gen).device.type == "cuda"
    out = mixgcf_negatives(h[:2, :], h[:2, None, :].expand(2, 3, 4), torch.randn(6, 3, 4, device="cuda"),
                           torch.tensor([[0, 1, 2, 3, 4], [5, 4, 3, 2, 1]], device="cuda"), gen)
    assert out.shape == (2, 3, 4) and out.device.type == "cuda"
    assert torch.isfinite(symmetric_contrastive(h, h.flip(0), 0.2, 0.01, 0.1))
