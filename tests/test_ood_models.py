"""DRO on any pairwise model, DRGO and CausalDiffRec: they train with a falling loss, resume exactly, and their
mechanisms hold on hand-built cases (docs/ood-models.md)."""
from __future__ import annotations

import math
import warnings

import networkx as nx
import numpy as np
import pytest
import torch

from graphrec.batches import PairBatch
from graphrec.config import build_config
from graphrec.diffusion import diffusion_loss, reverse_sample
from graphrec.dro import group_dro_objective, sinkhorn_distance, user_clusters
from graphrec.errors import GraphrecError
from graphrec.graph.adjacency import NormalizedAdjacency
from graphrec.graph.centrality import sampled_betweenness
from graphrec.models.causaldiffrec import EnvironmentVAE
from graphrec.models.lightgcn import LightGCN
from graphrec.trainer import Trainer

import tiny_models  # noqa: F401  (registers tiny_fm and tiny_view_contrast)
from train_helpers import RESUME_CONFIG, history, merged, results, stopped_and_resumed

SMALL_DATA = {"format": "synthetic", "synthetic": {"num_users": 300, "num_items": 200, "num_communities": 4,
                                                   "mean_degree": 12, "seed": 3}}


def config(tmp_path, model: dict, dro: dict | None = None, **train):
    """The resume test's config on smaller synthetic data with `model` (and a dro section)."""
    raw = merged(RESUME_CONFIG, {"output_dir": str(tmp_path / "runs"), "data": SMALL_DATA,
                                 "train": {"epochs": 4, "patience": 0, **train}})
    raw["model"] = model
    if dro is not None:
        raw["dro"] = dro
    return build_config(raw)


# sample_nodes 100 of the 500 nodes: the training and resume tests run the node-sampled per-node losses
DRGO = {"name": "drgo", "embedding_dim": 16, "pretrain_epochs": 1, "pretrain_steps": 2, "sinkhorn_points": 16,
        "sample_nodes": 100,
        "sinkhorn_iterations": 5, "centrality_pivots": 20, "diffusion": {"steps": 10, "noise_min": 1e-4,
                                                                        "noise_max": 0.02, "sampling_steps": 0,
                                                                        "normalize_input": True}}
CAUSALDIFFREC = {"name": "causaldiffrec", "embedding_dim": 16, "pretrain_epochs": 1, "pretrain_steps": 2,
                 "sample_nodes": 100,
                 "diffusion": {"steps": 10, "noise_min": 0.01, "noise_max": 0.09, "sampling_steps": 10,
                               "time_dim": 10, "clip_x0": 1.0}}


@pytest.mark.parametrize("model", [DRGO, CAUSALDIFFREC, {**CAUSALDIFFREC, "diffusion": {
    **CAUSALDIFFREC["diffusion"], "target": "eps", "reweight": True}}], ids=["drgo", "causaldiffrec", "eps-reweighted"])
def test_latent_diffusion_models_train_and_resume_exactly(tmp_path, model):
    cfg = config(tmp_path, model, lr=0.02, max_batches=8, groups={"denoiser": {"lr": 0.01}})
    trainer = Trainer(cfg)
    metrics = results(trainer.fit())
    records = history(trainer.run_dir)
    assert [r["stage"] for r in records] == ["pretrain"] + ["main"] * 3
    main = [r["train/bpr"] for r in records[1:]]
    assert main[-1] < main[0] - 0.02, main
    assert "valid/recall@20" not in records[0] and metrics["test/recall@20"] > 0
    per_epoch = trainer._epoch_batches()
    assert stopped_and_resumed(cfg, 2 + per_epoch + 3) == (metrics, records)


@pytest.mark.parametrize("model", [DRGO, CAUSALDIFFREC], ids=["drgo", "causaldiffrec"])
def test_pretraining_leaves_the_ego_table_alone(tmp_path, model):
    """Pre-training reads the latents detached, so only the KL would reach the ego table, and Adam would turn that
    tiny gradient into lr-sized steps along one shared direction: the stage does not train the table, and the rest
    of the model does move in it."""
    trainer = Trainer(config(tmp_path, {**model, "pretrain_epochs": 2}, lr=0.02, epochs=2))
    before = {name: p.detach().clone() for name, p in trainer.model.named_parameters()}
    trainer.fit()
    after = dict(trainer.model.named_parameters())
    assert torch.equal(after["embedding"], before["embedding"])
    assert any(not torch.equal(after[name], before[name]) for name in before if name.startswith("denoiser."))


def test_lightgcn_with_dro_trains_and_resumes_exactly(tmp_path):
    cfg = config(tmp_path, {"name": "lightgcn", "embedding_dim": 16, "num_layers": 2},
                 {"enabled": True, "temperature": 0.3, "groups": "popularity", "num_groups": 4}, lr=0.02)
    trainer = Trainer(cfg)
    metrics = results(trainer.fit())
    losses = [r["train/bpr"] for r in history(trainer.run_dir)]
    assert losses[-1] < losses[0] - 0.05, losses
    assert stopped_and_resumed(cfg, trainer._epoch_batches() + 2) == (metrics,
                                                                                         history(trainer.run_dir))


def test_reduce_samples_is_the_configured_dro_objective(tmp_path):
    """Per sample: sum_i softmax(l / tau)_i l_i by hand; popularity groups: the group objective over the groups of
    the positives; disabled: the mean."""
    losses = torch.tensor([0.2, 1.0, 0.5, 0.3])
    batch = PairBatch(torch.tensor([0, 1, 2, 3]), torch.tensor([0, 1, 2, 3]), torch.tensor([4, 5, 6, 7]))
    model = Trainer(config(tmp_path, {"name": "lightgcn", "embedding_dim": 8}, {"enabled": True, "temperature": 0.5})
                    ).model
    weights = np.exp(losses.numpy() / 0.5) / np.exp(losses.numpy() / 0.5).sum()
    assert model.reduce_samples(losses, batch).item() == pytest.approx(float((weights * losses.numpy()).sum()))
    grouped = Trainer(config(tmp_path, {"name": "lightgcn", "embedding_dim": 8},
                             {"enabled": True, "temperature": 0.5, "groups": "popularity", "num_groups": 3})).model
    groups = grouped.reduction.group_of[batch.pos]
    assert grouped.reduce_samples(losses, batch).item() == pytest.approx(
        group_dro_objective(losses, groups, 3, 0.5).item())
    plain = Trainer(config(tmp_path, {"name": "lightgcn", "embedding_dim": 8})).model
    assert plain.reduce_samples(losses, batch).item() == pytest.approx(0.5)


def test_dro_keys_take_the_models_defaults_and_refuse_models_without_per_sample_losses(tmp_path):
    drgo = config(tmp_path, {"name": "drgo"})
    assert (drgo.dro.enabled, drgo.dro.groups) == (True, "user_cluster")
    assert config(tmp_path, {"name": "drgo"}, {"enabled": False}).dro.enabled is False
    assert config(tmp_path, {"name": "lightgcn"}).dro.enabled is False
    with pytest.raises(GraphrecError, match="dro.enabled: model tiny_fm has no per-sample ranking losses"):
        build_config({"split": {"method": "random"}, "model": {"name": "tiny_fm"}, "dro": {"enabled": True}})
    with pytest.raises(GraphrecError, match="model tiny_view_contrast has no per-sample"):
        config(tmp_path, {"name": "tiny_view_contrast"}, {"enabled": True})

    class Declared(LightGCN):
        per_sample_loss = True

        def loss(self, batch):
            return super().loss(batch)

    class Undeclared(LightGCN):
        def loss(self, batch):
            return super().loss(batch)

    assert Declared.per_sample_loss and not Undeclared.per_sample_loss and LightGCN.per_sample_loss


def test_bpr_trains_the_latents_through_a_frozen_denoiser(tmp_path):
    """BPR's gradient reaches the ego table but not the denoiser, which only the diffusion loss trains."""
    trainer = Trainer(config(tmp_path, {**DRGO, "pretrain_epochs": 0}))
    model = trainer.model
    trainer.state.epoch = 0
    batch = next(trainer.batches())
    out = model.loss(batch)
    model.zero_grad()
    out["bpr"].backward(retain_graph=True)
    assert model.embedding.grad.abs().sum() > 0
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in model.denoiser.parameters())
    model.zero_grad()
    out["diffusion"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.denoiser.parameters())


@pytest.mark.parametrize("model", [DRGO, CAUSALDIFFREC], ids=["drgo", "causaldiffrec"])
def test_untrained_denoiser_passes_latents_through_for_eps_and_scrambles_them_for_x0(tmp_path, model):
    """Before any training, BPR ranks through f(z, t = 0): with target eps that is x0_hat = (z - sqrt(1 - abar_0)
    eps_hat) / sqrt(abar_0), z itself up to a few percent; with target x0 it is a random map of z, unrelated to it
    (docs/ood-models.md §2c)."""
    def denoised_cosine(target):
        diffusion = {**model["diffusion"], "target": target, "reweight": False}
        latent_model = Trainer(config(tmp_path / target, {**model, "pretrain_epochs": 0, "diffusion": diffusion})).model
        with torch.no_grad():
            mu, _, _ = latent_model.encode(latent_model.graph, sample=False)
            cond, _ = latent_model.condition(mu, sample=False)
            out = latent_model.denoised(mu, cond, latent_model.latent_scale(mu))
        return torch.nn.functional.cosine_similarity(out, mu, dim=1).mean().item()

    assert denoised_cosine("eps") > 0.999
    assert abs(denoised_cosine("x0")) < 0.2


def test_evaluation_embeddings_are_the_reverse_chain_read_out(tmp_path):
    """propagate() = read-out of reverse_sample over mu at unit scale, the same on every call (its own seed)."""
    model = Trainer(config(tmp_path, CAUSALDIFFREC)).model
    model.eval()
    with torch.no_grad():
        mu, _, _ = model.encode(model.graph, sample=False)
        env, _ = model.condition(mu, sample=False)
        scale = model.latent_scale(mu)
        gen = torch.Generator().manual_seed(model.eval_seed)
        chain = reverse_sample(model.denoiser, model.schedule, mu * scale, env, 10, generator=gen, clip_x0=1.0)
        expected = model.readout(chain / scale)
        assert torch.allclose(model.propagate(), expected, atol=1e-6)
        assert torch.equal(model.propagate(), model.propagate())


def test_environments_toggle_sampled_edges_and_only_the_generator_feels_reinforce(tmp_path):
    model = Trainer(config(tmp_path, CAUSALDIFFREC)).model
    items = model.num_items
    train = set(model.train_keys.tolist())
    adj, log_prob = model.environment(0)
    edited = set((adj.users * items + adj.items).tolist())
    removed, added = train - edited, edited - train
    assert removed and added and len(added) + len(removed) <= model.num_users * model.cfg.edits_per_user
    assert {k // items for k in added | removed} <= set(range(model.num_users))
    log_prob.backward()
    assert model.edit_logits.grad[0].abs().sum() > 0 and model.edit_logits.grad[1:].abs().sum() == 0
    model.zero_grad()
    out = model.graph_loss(None)
    out["generator"].backward(retain_graph=True)
    assert model.edit_logits.grad.abs().sum() > 0 and model.embedding.grad is None
    model.zero_grad()
    out["invariance"].backward()
    assert model.edit_logits.grad is None and model.embedding.grad.abs().sum() > 0


@pytest.mark.parametrize("model", [DRGO, CAUSALDIFFREC], ids=["drgo", "causaldiffrec"])
def test_node_sampled_diffusion_loss_covering_every_node_is_the_all_node_loss(tmp_path, model):
    """A sample holding every node draws and computes exactly what the all-node form does (loss and the
    reconstruction's x0 predictions); a smaller sample is distinct nodes from the model's generator; 'all' and a
    sample as large as the graph sample nothing."""
    m = Trainer(config(tmp_path, model)).model
    n = m.graph.num_nodes
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(n, 16, generator=gen)
    cond = torch.randn(n, 16, generator=gen) if m.conditioned else None
    recon, scale = torch.tensor([0, 5, 5, 300, 301, 7, 450]), torch.tensor(3.0)
    state = m.noise_gen.get_state()
    torch.manual_seed(1)  # the denoiser's dropout
    full_loss, full_x0, full_at = m.diffusion_term(z, scale, cond, recon, None)
    m.noise_gen.set_state(state)
    torch.manual_seed(1)
    loss, x0, at = m.diffusion_term(z, scale, cond, recon, torch.randperm(n, generator=gen))
    torch.testing.assert_close(loss, full_loss)
    torch.testing.assert_close(x0[at], full_x0[full_at])
    sample = m.node_sample(n)
    assert len(sample) == 100 and len(torch.unique(sample)) == 100 and 0 <= int(sample.min()) <= int(sample.max()) < n
    for size in ("all", n):
        m.cfg.sample_nodes = size
        assert m.node_sample(n) is None


def test_node_sampled_loss_averages_the_sample_and_reconstruction_reads_its_rows(tmp_path):
    """With a strict sample the loss is the mean of the per-row losses at the sampled rows (their own step and noise)
    and the denoiser runs on the sample and the reconstruction rows only."""
    m = Trainer(config(tmp_path, DRGO)).model
    m.eval()  # no dropout: the per-row outputs are a function of (x_t, t)
    n = m.graph.num_nodes
    z = torch.randn(n, 16, generator=torch.Generator().manual_seed(0))
    sample, recon = torch.tensor([9, 2, 40]), torch.tensor([2, 7])
    state = m.noise_gen.get_state()
    loss, x0, at = m.diffusion_term(z, torch.tensor(2.0), None, recon, sample)
    assert x0.shape == (4, 16)  # rows 2, 7, 9, 40
    m.noise_gen.set_state(state)
    rows = torch.tensor([2, 7, 9, 40])
    out = diffusion_loss(m.denoiser, m.schedule, z[rows] * 2, None, m.noise_gen, "x0", True)
    torch.testing.assert_close(loss, out.loss[[2, 0, 3]].mean())
    torch.testing.assert_close(x0[at], out.x0_pred[[0, 1]])


def test_environment_vae_loss_over_rows_is_the_loss_of_those_nodes():
    vae = EnvironmentVAE(8)
    gen = torch.Generator().manual_seed(0)
    z, noise = torch.randn(30, 8, generator=gen), torch.randn(30, 8, generator=gen)
    rows = torch.tensor([3, 3, 10, 29])
    env, loss = vae(z, noise, rows)
    env_rows, expected = vae(z[rows], noise[rows])
    assert env.shape == (30, 8)
    torch.testing.assert_close(env[rows], env_rows)
    torch.testing.assert_close(loss, expected)


def test_environment_vae_stays_finite_on_latents_in_the_hundreds():
    """A CausalDiffRec sweep trial diverged to nan with latents up to 638: exp of the unclamped log-std overflowed.
    With the log-stds clamped (MAX_LOGSTD) the sample and the loss stay finite, and below the bound the loss is
    the Gaussian KL formula with the learned prior."""
    from graphrec.models.causaldiffrec import MAX_LOGSTD
    vae = EnvironmentVAE(8)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        vae.logstd.weight.fill_(0.5)
    z, noise = torch.randn(30, 8, generator=gen) * 600, torch.randn(30, 8, generator=gen)
    env, loss = vae(z, noise)
    assert torch.isfinite(env).all() and torch.isfinite(loss)
    with torch.no_grad():
        gap = float((env - vae.mean(z.relu())).abs().max())
    assert gap <= float(noise.abs().max()) * math.exp(MAX_LOGSTD) * 1.001
    small = torch.randn(30, 8, generator=gen) * 0.1
    with torch.no_grad():
        vae.prior_mean.fill_(0.2)
        vae.prior_logstd.fill_(-0.3)
    _, loss = vae(small, None)
    hidden = small.relu()
    mean, logstd = vae.mean(hidden), vae.logstd(hidden)
    recon = (vae.decoder(mean.relu()) - small).pow(2).sum(1)
    var_q, var_p = (2 * logstd).exp(), math.exp(-0.6)
    kl = 0.5 * (torch.log(var_p / var_q) + (var_q + (mean - 0.2).pow(2)) / var_p - 1).sum(1)
    torch.testing.assert_close(loss, (recon + kl).mean())


def test_encoder_kl_is_the_vgae_formula(tmp_path):
    m = Trainer(config(tmp_path, DRGO)).model
    with torch.no_grad():
        m.logstd_map.weight.normal_(0, 0.5, generator=torch.Generator().manual_seed(0))
    state = m.noise_gen.get_state()
    z, mu, kl = m.encode(m.graph, sample=True)
    logstd = m.logstd_map(mu).clamp(max=float(mu.detach().pow(2).mean().sqrt().log()))
    expected = -0.5 / len(mu) * (1 + 2 * logstd - mu.pow(2) - (2 * logstd).exp()).sum(1).mean()
    torch.testing.assert_close(kl, expected)
    m.noise_gen.set_state(state)
    torch.testing.assert_close(z, mu + torch.randn(mu.shape, generator=m.noise_gen) * logstd.exp())
    assert m.encode(m.graph, sample=False)[2] == 0


def test_encoder_noise_is_capped_at_the_latents_own_scale(tmp_path):
    """A log-sigma map that asks for sigma = e^5 gets sigma = RMS(mu) on every entry: z stays a noisy latent."""
    m = Trainer(config(tmp_path, DRGO)).model
    with torch.no_grad():
        m.logstd_map.bias.fill_(5.0)
    state = m.noise_gen.get_state()
    z, mu, _ = m.encode(m.graph, sample=True)
    m.noise_gen.set_state(state)
    noise = torch.randn(mu.shape, generator=m.noise_gen)
    torch.testing.assert_close(z, mu + noise * mu.pow(2).mean().sqrt())


def test_condition_losses_train_the_environment_vae_not_the_latents(tmp_path):
    """CausalDiffRec's environment VAE and the diffusion loss read the latents detached: their gradients reach the
    environment VAE (and the denoiser), never the ego table, which BPR and the KL shape."""
    trainer = Trainer(config(tmp_path, {**CAUSALDIFFREC, "pretrain_epochs": 0, "env_weight": 1.0}))
    model = trainer.model
    trainer.state.epoch = 0
    out = model.loss(next(trainer.batches()))
    for term in ("condition", "diffusion"):
        model.zero_grad()
        out[term].backward(retain_graph=True)
        assert model.embedding.grad is None or model.embedding.grad.abs().sum() == 0, term
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.environment_vae.parameters()), term
    model.zero_grad()
    out["bpr"].backward()
    assert model.embedding.grad.abs().sum() > 0


def test_drgo_penalty_from_the_loss_read_out_equals_the_direct_one(tmp_path):
    """The Sinkhorn penalty read from the BPR read-out (the batch's rows, then the nominal nodes) equals the
    divergences of each group's users and the nominal nodes, each read out on its own."""
    trainer = Trainer(config(tmp_path, {**DRGO, "pretrain_epochs": 0, "sinkhorn_points": 4096,
                                        "sinkhorn_iterations": 50, "sinkhorn_tolerance": 0}))
    m = trainer.model
    trainer.state.epoch = 0
    batch = next(trainer.batches())
    latents = torch.randn(m.graph.num_nodes, 16, generator=torch.Generator().manual_seed(0))
    rows, _ = m.batch_rows(batch)
    with torch.no_grad():
        penalty = m.group_penalty(batch, rows, m.readout(latents, torch.cat([rows, m.penalty_rows()])))
        groups = m.reduction.groups(batch)
        members, nominal = m.readout(latents, batch.users), m.readout(latents, m.nominal)
        expected = torch.zeros(m.reduction.cfg.num_groups)
        for group in torch.unique(groups).tolist():
            expected[group] = sinkhorn_distance(members[groups == group], nominal, 0.05, 50)
    assert expected.abs().sum() > 0
    torch.testing.assert_close(penalty, m.cfg.sinkhorn_weight * expected, atol=1e-5, rtol=1e-4)


def test_sampled_betweenness_with_every_pivot_is_exact():
    rng = np.random.default_rng(0)
    pairs = {(int(u), int(i)) for u, i in zip(rng.integers(0, 12, 30), rng.integers(0, 9, 30))}
    users, items = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    adj = NormalizedAdjacency.from_numpy(users, items, 12, 9)
    graph = nx.Graph()
    graph.add_nodes_from(range(21))
    graph.add_edges_from((u, 12 + i) for u, i in pairs)
    exact = nx.betweenness_centrality(graph, normalized=False)
    ours = sampled_betweenness(adj, torch.arange(21))
    assert np.allclose(ours.numpy(), [2 * exact[v] for v in range(21)])


def test_user_clusters_recover_planted_communities():
    """Two user communities that never share an item fall into two clusters."""
    rng = np.random.default_rng(1)
    users = np.repeat(np.arange(40), 6)
    items = np.where(users < 20, rng.integers(0, 15, users.size), rng.integers(15, 30, users.size))
    keep = np.unique(users * 30 + items)
    labels = user_clusters(keep // 30, keep % 30, 40, 30, 2, rank=4, seed=0).numpy()
    assert len(set(labels[:20])) == 1 and len(set(labels[20:])) == 1 and labels[0] != labels[20]


def test_schedules_count_every_epoch_and_an_idle_stage_warns_nothing(tmp_path):
    """The main group sits out the pre-training epoch, yet its cosine schedule advances through it (schedules count the
    run's epochs), silently: torch's "scheduler before optimizer" warning is no news here."""
    cfg = config(tmp_path, DRGO, lr=0.02, epochs=4, max_batches=2, lr_schedule="cosine")
    trainer = Trainer(cfg)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit()
    assert not [w for w in caught if "lr_scheduler" in str(w.message)]
    records = history(trainer.run_dir)
    assert [r["stage"] for r in records] == ["pretrain"] + ["main"] * 3
    rates = [r["train/lr"] for r in records]
    assert rates == pytest.approx([0.01 * (1 + math.cos(math.pi * epoch / 4)) for epoch in range(4)])
