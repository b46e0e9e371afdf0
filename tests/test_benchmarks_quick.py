"""Each benchmark command runs in --quick mode (small synthetic data, no RecBole) and prints a table; no timings checked."""
import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # benchmarks/ lives at the repo root, not installed
from benchmarks.__main__ import COMMANDS, main  # noqa: E402
from benchmarks.common import DOCS, RESULTS  # noqa: E402


@pytest.fixture
def restore_threads():
    """The commands set torch's thread count and OMP/MKL variables for their process; undo that for other tests."""
    threads = torch.get_num_threads()
    env = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    yield
    torch.set_num_threads(threads)
    for key, value in env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _stamp(path):
    return path.stat().st_mtime_ns if path.exists() else None


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_quick_mode_prints_a_table(command, capsys, restore_threads):
    before = (_stamp(DOCS), _stamp(RESULTS))
    # one thread: quick mode must stay fast even when other jobs load the machine
    code = main([command, "--quick", "--threads", "1"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "\n| " in out and "|---|" in out, out  # a markdown table was printed
    assert "not written to docs/benchmarks.md" in out
    assert (_stamp(DOCS), _stamp(RESULTS)) == before  # --quick never writes


def test_tta_refit_quick_trains_the_selected_epochs_on_train_and_valid(capsys, restore_threads):
    before = (_stamp(DOCS), _stamp(RESULTS))
    code = main(["tta", "--quick", "--threads", "1", "--protocol", "refit", "--patience", "1"])
    out = capsys.readouterr().out
    assert code == 0, out
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ") for line in out.splitlines() if line.startswith("| ")}
    refit, selection = rows["refit (train + valid)"], rows["selection (train, valid)"]
    assert selection[1] == f"best epoch {refit[3]}"  # the refit run trains exactly the selected number of epochs
    assert float(refit[6]) > 0.05  # it learned something (random ranking of 1,000 items: about 0.02)
    assert "not written to docs/benchmarks.md" in out and (_stamp(DOCS), _stamp(RESULTS)) == before


def test_tta_trains_the_model_it_is_given(capsys, restore_threads):
    code = main(["tta", "--quick", "--threads", "1", "--model", "xsimgcl", "--model-set", "num_layers=2"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "model xsimgcl, batch 2048" in out and ", 2 layers," in out  # the run's own model config, not LightGCN's
    assert "(synthetic, xsimgcl, num_layers=2, batch 2048" in out


def test_a_tta_run_of_another_model_keeps_lightgcns_summary_row_and_curve():
    from benchmarks.tta import result_key
    assert result_key("lightgcn") == "tta"  # the key the summary's time-to-accuracy row reads
    assert result_key("xsimgcl") == "tta-xsimgcl"  # its own section, docs/benchmarks-tta-xsimgcl.{csv,png}


def test_a_bad_model_key_is_one_line_and_exit_2(capsys, restore_threads):
    code = main(["tta", "--quick", "--threads", "1", "--model", "xsimgc"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == "benchmarks: unknown model 'xsimgc' (model.name), did you mean 'xsimgcl'?"


def test_scale_refuses_zero_timed_batches_in_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["scale", "--quick", "--batches", "0"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert exit_info.value.code == 2 and err.endswith("argument --batches: must be a whole number >= 1, got '0'")


def test_neighbourhood_coverage_of_a_hand_made_graph():
    """u0-i0, u1-i0, u1-i1 (nodes u0=0, u1=1, i0=2, i1=3; 6 adjacency entries) from the batch row u0: S_3 = {u0}
    holds 1 entry, S_2 = {u0, i0} 1 + 2, S_1 = {u0, i0, u1} 1 + 2 + 2."""
    import torch

    from benchmarks.neighbourhood import coverage
    from graphrec.graph.adjacency import NormalizedAdjacency
    adj = NormalizedAdjacency(torch.tensor([0, 1, 1]), torch.tensor([0, 0, 1]), 2, 2)
    assert coverage(adj.crow, adj.col, torch.tensor([0]), 3) == [(1 / 4, 1 / 6), (2 / 4, 3 / 6), (3 / 4, 5 / 6)]


def test_dense_floor_lists_the_contrastive_and_projection_products_of_a_hand_made_batch():
    """Batch users (0, 0, 1), positives (0, 2, 2): 2 distinct users and 2 distinct items. Joint contrast (SGCL): one
    group of 4 nodes, its logits (4, d) x (d, 4) and the backward's two (4, 4) x (4, d); apart (SGL): two groups of
    2. VBPR projects the 3 distinct items of the batch's rows (positives 0, 2 and negative 5), FREEDOM the 3
    positives and 3 negatives, IDSF every item; each as a forward and a weight-gradient product per modality."""
    from types import SimpleNamespace

    from benchmarks.dense_floor import contrastive_products, gflops, projection_products, time_products
    from graphrec.models.base import Recommender
    batch = SimpleNamespace(users=torch.tensor([0, 0, 1]), pos=torch.tensor([0, 2, 2]),
                            neg=torch.tensor([[5], [5], [2]]))
    d = 8

    def model(**cfg):
        return SimpleNamespace(cfg=SimpleNamespace(embedding_dim=d, **cfg), num_users=2, num_items=9,
                               modalities=["text"], raw_features={"text": torch.zeros(9, 16)},
                               batch_rows=lambda b: Recommender.batch_rows(SimpleNamespace(num_users=2), b))
    joint = contrastive_products(model(ssl_joint=True, ssl_bidirectional=False), batch)
    assert joint == [(4, d, 4), (4, 4, d), (4, 4, d)]
    assert contrastive_products(model(ssl_joint=False, ssl_bidirectional=True), batch) == [(2, d, 2), (2, 2, d),
                                                                                           (2, 2, d)] * 4
    assert gflops(joint) == 3 * 2 * 4 * 4 * d / 1e9
    mm = model()
    assert projection_products(mm, batch, "vbpr") == [(3, 16, d), (d, 3, 16)]
    assert projection_products(mm, batch, "freedom") == [(6, 16, d), (d, 6, 16)]
    assert projection_products(mm, batch, "idsf") == [(9, 16, d), (d, 9, 16)]
    assert time_products(joint, repeats=2) > 0


def test_contrastive_benchmark_times_the_dataset_folder_it_is_pointed_at(tmp_path, capsys, restore_threads):
    """--data-path replaces the YAML's Gowalla folder (as on the device machine, which has no ../shared): 60 users
    with 10 items each, of which experiments/sgl-gowalla.yaml's valid_ratio 0.1 leaves 540 training events, so
    at batch 64 an epoch is ceil(540 / 64) = 9 batches; the JSON has every model and no GPU peak on the CPU."""
    import json

    from benchmarks.contrastive import main as contrastive
    (tmp_path / "train.txt").write_text("".join(f"{u} " + " ".join(str((u + j) % 40) for j in range(10)) + "\n"
                                                for u in range(60)))
    (tmp_path / "test.txt").write_text("".join(f"{u} {(u + 7) % 40}\n" for u in range(60)))
    out = tmp_path / "result.json"
    code = contrastive(["--data", "gowalla", "--data-path", str(tmp_path), "--batch-size", "64", "--rounds", "1",
                        "--per-round", "1", "--models", "lightgcn,sgcl", "--out", str(out)])
    assert code == 0
    results = json.loads(out.read_text())["results"]
    assert sorted(results) == ["lightgcn", "sgcl"]
    assert [row["batches_per_epoch"] for row in results.values()] == [9, 9]
    assert results["lightgcn"]["vs_lightgcn"] == 1.0 and results["sgcl"]["dense_gflop"] > 0
    assert results["sgcl"]["cuda_peak_allocated_mib"] is None
    assert "| sgcl |" in capsys.readouterr().out


def test_alloc_quick_runs_each_chosen_policy_in_its_own_process(capsys, restore_threads):
    code = main(["alloc", "--quick", "--threads", "1", "--policies", "1,3"])
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| 30k |")]
    assert code == 0 and len(rows) == 2, out
    assert "huge pages above" in rows[0] and "default before" in rows[1]
    assert "Error" not in out, out  # every policy's worker ran its steps


@pytest.mark.parametrize("policies", ["0", "5", "1,x", ""])
def test_alloc_refuses_policy_numbers_it_does_not_have(policies, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["alloc", "--quick", "--policies", policies])
    assert exit_info.value.code == 2 and "expected numbers from 1 to 4" in capsys.readouterr().err


def test_robustness_draws_each_loss_at_its_weight_chosen_on_valid_at_share_0():
    from benchmarks.robustness import selected_weights, table

    def row(loss, weight, share, seed, valid, test):
        return {"loss": loss, "ssl_weight": str(weight), "share": str(share), "seed": str(seed),
                "valid_recall@20": str(valid), "test_recall@20": str(test)}
    rows = [row("infonce", 0.1, 0, 1, 0.30, 0.20), row("infonce", 0.1, 0, 2, 0.10, 0.22),   # valid mean 0.20
            row("infonce", 0.01, 0, 1, 0.21, 0.10), row("infonce", 0.01, 0, 2, 0.21, 0.12),  # 0.21: chosen
            row("infonce", 0.01, 0.5, 1, 0.90, 0.11), row("infonce", 0.1, 0.5, 1, 0.99, 0.30),
            row("symmetric-q1", 0.001, 0.5, 1, 0.5, 0.5)]                                    # no share 0: no curve
    assert selected_weights(rows) == {"infonce": 0.01}
    markdown = table(rows).markdown()
    assert "| infonce (weight 0.01) | 0.1100 (0.1000-0.1200, 2 seeds) | 0.1100 (0.1100-0.1100, 1 seed) |" in markdown
    assert "infonce (weight 0.1)" not in markdown and "symmetric-q1" not in markdown
