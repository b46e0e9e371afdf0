"""docs/benchmarks.md: a summary table (regenerated from benchmarks/results.json) and an append-only results log."""
from __future__ import annotations

import re
from typing import Any, Sequence

from .allocator_policy import DEFAULT_POLICY
from .common import DOCS, PAPER_RECALL20_GOWALLA, Table, env_line, fmt_mib, fmt_s, fmt_x

START, END = "<!-- summary:start -->", "<!-- summary:end -->"
LOG_HEADING = "## Results log"

TITLE = "# graphrec benchmarks\n\n"
INTRO = """
Speed, memory and time-to-accuracy of graphrec's LightGCN against named references, produced by
`python -m benchmarks <command>` (see [How to run](#how-to-run)). Every number below was measured on a CPU
shared with other work, so reference and graphrec are always timed in the same run and compared as ratios;
absolute seconds are given too. The summary is regenerated from the latest run of each command
(`benchmarks/results.json`); the full tables, with date, CPU, threads, versions and the exact command, are
appended to the [Results log](#results-log).

"""

HOW_TO = """
## How to run

```
python -m benchmarks epoch  --data /work/shared/data/gowalla   # graphrec vs PyG vs RecBole vs SpMM floor
python -m benchmarks eval   --data /work/shared/data/gowalla   # full ranking: graphrec vs RecBole vs dense reference
python -m benchmarks scale  --sizes 1M,3M,10M,30M              # synthetic graphs: ns/nnz, epoch, RSS, evaluation
python -m benchmarks memory --data /work/shared/data/gowalla   # peak RSS of training and evaluation (fresh processes)
python -m benchmarks tta    --data /work/shared/data/gowalla --minutes 60   # time to Recall@20 = 0.1830
python -m benchmarks profile --data /work/shared/data/gowalla  # torch.profiler top operators of a training batch
python -m benchmarks knn --threads 1                          # kNN item graph, 100k x 384-d; features text items/s
python -m benchmarks.multimodal_epoch --data baby --batches 2 --rounds 2 --threads 1  # VBPR/LATTICE/FREEDOM/IDSF vs LightGCN
```

Common options: `--threads N` (default 2), `--no-write` (print only), `--quick` (small synthetic data, no RecBole,
nothing written; what `tests/test_benchmarks_quick.py` runs). RecBole 1.2.1 is installed on first use into its own
virtualenv, `~/.cache/graphrec-bench/recbole-venv` (same torch version as graphrec's), and reads the same split
written as atomic files under `~/.cache/graphrec-bench/recbole-data/`; nothing of it enters the repository.
matplotlib is optional (`pip install matplotlib`, or the `bench` extra); without it the PNG plots are skipped.

What is measured:
- **epoch**: LightGCN with the paper's settings (batch 2048, dim 64, 3 layers, Adam lr 0.001, L2 1e-4, one uniform
  negative per positive), the full propagation in every batch, as each framework trains it. graphrec: its own
  `Trainer` (model, fused Adam, sampler), batches from `graphrec.data.sampling.epoch_batches`; the per-epoch
  shuffle + negative sampling is timed separately and added. PyG: `torch_geometric.nn.models.LightGCN` in the loop
  of PyG's `examples/lightgcn.py` (`edge_index`, `recommendation_loss`, `lambda_reg=1e-4`). RecBole: the body of its
  `Trainer._train_epoch` (its dataloader with negative sampling, `calculate_loss`, backward, Adam), `require_pow=True`
  so its L2 is graphrec's. SpMM floor: `torch.sparse.mm` of the normalized adjacency (int64 CSR, dataset order) with
  a (nodes, 64) matrix, 3 forward + 3 backward per batch, times the batches per epoch. Per-epoch times are the mean
  batch times the batches per epoch (`--full` also times whole epochs).
- **eval**: full ranking of every test user with training items masked, Recall/NDCG/Precision/Hit/MRR@20.
  graphrec's `Evaluator` (with and without computing the propagated embeddings), RecBole's `Trainer.evaluate`
  (full sort, `eval_batch_size` set so it scores as many users per chunk as graphrec), and a plain dense reference
  (score rows + stable argsort per user) on a user subset whose metrics must equal graphrec's within 1e-6.
- **scale**: `graphrec.data.synthetic.generate` graphs (Zipf item popularity, log-normal user degrees, Gowalla's
  mean degree of 27 and items/users ratio of 1.37) with ~400 batches per epoch; one training batch per adjacency
  non-zero, peak RSS per size (each size in a fresh process), and full-ranking evaluation.
- **tta**: the paper protocol (train on all of train.txt, evaluate test.txt after every epoch), wall time
  (training + evaluation) until test Recall@20 first reaches 0.1830; the budget is checked at epoch ends.
- **profile**: `torch.profiler` over 10 graphrec training batches; operators by self CPU time.
- **knn**: `graphrec.graph.knn.knn_graph` of 100,000 seeded Gaussian items x 384-d, k = 10, chunk 4096, in a fresh
  process (wall, CPU seconds, peak RSS); then `graphrec features text`'s encoder on 1,000 synthetic 8-word titles
  (batch 128, after a warm-up batch), when the `text` extra is installed (otherwise the row says why not).

Measuring on a shared 2-core machine:
- Threads wait passively by default here (`--omp-wait passive` sets `OMP_WAIT_POLICY=PASSIVE` for the run and
  its subprocesses, RecBole included). With OpenMP's default spinning, a 2-thread run on a loaded machine waits for
  descheduled sibling threads at every parallel region: on the quick data at a load average of ~5 we measured
  PyG's batch at 1.74 s spinning vs 43 ms passive, graphrec's at 50-190 ms vs 19 ms. On a quiet machine passive
  waiting costs ~5%
  (graphrec Gowalla batch 67 ms active vs 70-72 ms passive). `--omp-wait active` or `default` to compare.
- graphrec and the floor are timed in alternating rounds in one process, so background load hits both alike;
  PyG follows in the same process, RecBole right after in its own process. Each run records the load average.
"""


def _num(results: dict, *path: str) -> Any:
    node: Any = results
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def summary_markdown(results: dict[str, Any]) -> str:
    """The summary table from the latest results of each command."""
    epoch, ev, mem, tta = (results.get(k, {}) for k in ("epoch", "eval", "memory", "tta"))
    versions = [_num(r, "env", "recbole") for r in (epoch, ev, mem)]
    rb_ver = next((v for v in versions if v and v != "not run"), "1.2.1")
    pyg_ver = _num(epoch, "env", "pyg") or "2.x"

    def cell(seconds, ref=None, ours=None) -> str:
        if seconds is None:
            return "not measured"
        text = fmt_s(seconds)
        if ref is not None and ours is not None and seconds:
            ratio = ours / seconds
            how = ("about the same" if 0.93 <= ratio <= 1.07 else
                   f"{fmt_x(1 / ratio)} faster" if ratio < 1 else f"{fmt_x(ratio)} slower")
            text += f" (graphrec: {fmt_x(ratio)} of this, {how})"
        return text

    g_epoch = _num(epoch, "graphrec", "epoch_s")
    lines = [START, "## Summary", "",
             "LightGCN on Gowalla (29,858 users, 40,981 items, 810,128 training events), CPU. "
             "In brackets: graphrec's time as a multiple of that column's.", "",
             f"| | graphrec | PyG {pyg_ver} | RecBole {rb_ver} | SpMM floor |", "|---|---|---|---|---|"]
    row = ["training epoch (batch 2048, dim 64, 3 layers)", cell(g_epoch)]
    for key in ("pyg", "recbole", "floor"):
        row.append(cell(_num(epoch, key, "epoch_s"), True, g_epoch))
    lines.append("| " + " | ".join(row) + " |")
    g_eval = _num(ev, "graphrec", "with_propagation_s")
    rb_eval = _num(ev, "recbole", "eval_s")
    rb_cell = cell(rb_eval, True, g_eval)
    rb_default = _num(ev, "recbole", "default_eval_s")
    if rb_default:
        rb_cell += f"; {fmt_s(rb_default)} with its default eval_batch_size (graphrec {fmt_x(g_eval / rb_default)})"
    lines.append("| " + " | ".join([
        "full-ranking evaluation, all test users (incl. propagation)", cell(g_eval),
        "no evaluator (example loop only)", rb_cell, "—"]) + " |")
    lines.append("| " + " | ".join([
        "peak RSS, training", fmt_mib(_num(mem, "graphrec_train", "peak_rss_mib")) if mem else "not measured",
        fmt_mib(_num(mem, "pyg_train", "peak_rss_mib")) if _num(mem, "pyg_train", "peak_rss_mib") else "not measured",
        fmt_mib(_num(mem, "recbole_train", "peak_rss_mib")) if _num(mem, "recbole_train", "peak_rss_mib")
        else "not measured", "—"]) + " |")
    lines.append("| " + " | ".join([
        "peak RSS, evaluation", fmt_mib(_num(mem, "graphrec_eval", "peak_rss_mib")) if mem else "not measured",
        "—", fmt_mib(_num(mem, "recbole_eval", "peak_rss_mib")) if _num(mem, "recbole_eval", "peak_rss_mib")
        else "not measured", "—"]) + " |")
    reached = _num(tta, "reached_s")
    if tta and reached is not None:
        tta_cell = (f"{fmt_s(reached)} (epoch {_num(tta, 'reached_epoch')}; batch {_num(tta, 'batch_size')}, "
                    f"{_num(tta, 'settings') or 'lr ' + str(_num(tta, 'lr'))})")
    elif tta:
        tta_cell = (f"not reached in {fmt_s(_num(tta, 'budget_s'))} (best {_num(tta, 'best_recall') or 0:.4f})"
                    if not _num(tta, "demo") else "not yet measured (only a short demo run)")
    else:
        tta_cell = "not yet measured"
    lines.append(f"| time to test Recall@20 = {PAPER_RECALL20_GOWALLA} (paper protocol) | {tta_cell} | not measured "
                 "| not measured | — |")
    lines.append("")
    envs = [results[k]["env"] for k in ("epoch", "eval", "memory", "tta", "scale") if k in results]
    if envs:
        e = envs[0]
        lines.append(f"Measured on {e['cpu']} ({e['cores']} cores), {e['threads']} threads, torch {e['torch']}, "
                     f"OMP_WAIT_POLICY {e.get('omp_wait_policy', '?')}; dates and commands in the results log below.")
        loads = {k: results[k]["env"] for k in ("epoch", "eval", "memory", "scale") if k in results}
        lines.append("The machine is shared; 1-minute load average (start-end) of each run: " + ", ".join(
            f"{k} {x.get('load_avg_start', '?')}-{x.get('load_avg_end', '?')}" for k, x in loads.items())
            + f" on {e['cores']} cores. Above ~2, absolute times are inflated; ratios within a run much less so.")
    scale = results.get("scale")
    if scale and scale.get("rows"):
        parts = [f"{r['label']}: {r['ns_per_nnz']:.1f} ns/nnz, epoch {fmt_s(r['epoch_s'])}, {fmt_mib(r['peak_rss_mib'])}"
                 for r in scale["rows"] if r.get("ns_per_nnz")]
        lines.append(f"Scaling (synthetic, one training batch per adjacency non-zero; {scale['env']['date']}): "
                     + "; ".join(parts) + ".")
        alloc = results.get("alloc")
        if alloc and alloc["env"]["date"] > scale["env"]["date"]:
            later = [f"{r['label']} {fmt_mib(r['peak_rss_mib'])}" for r in alloc["rows"]
                     if r.get("peak_rss_mib") and r["policy"] == DEFAULT_POLICY]
            if later:
                lines.append(f"Peak RSS under the allocator's current default policy (alloc, {alloc['env']['date']}): "
                             + "; ".join(later) + ".")
    lines.append("")
    lines.append("GPU rows (H100 / H200) are unmeasured: no GPU was lent to the task that produced these numbers.")
    lines.append(END)
    return "\n".join(lines)


def _read() -> str:
    if DOCS.is_file():
        return DOCS.read_text()
    return TITLE + START + "\n" + END + "\n" + INTRO + HOW_TO + "\n" + LOG_HEADING + "\n"


def write_summary(results: dict[str, Any]) -> None:
    """Replace the block between the summary markers with a fresh summary."""
    text = _read()
    block = summary_markdown(results)
    if START in text and END in text:
        text = re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _: block, text, count=1, flags=re.S)
    else:
        text = TITLE + block + "\n" + INTRO + text
    DOCS.parent.mkdir(parents=True, exist_ok=True)
    DOCS.write_text(text)


def append_section(command: str, tables: Sequence[Table], env: dict[str, Any]) -> None:
    """Append one dated section with the environment line, the exact command and the tables."""
    text = _read()
    if LOG_HEADING not in text:
        text = text.rstrip("\n") + "\n\n" + LOG_HEADING + "\n"
    section = [f"\n### {command} — {env['date']}", "", f"`{env['command']}`", "", env_line(env), ""]
    for table in tables:
        section += [table.markdown(), ""]
    DOCS.parent.mkdir(parents=True, exist_ok=True)
    DOCS.write_text(text.rstrip("\n") + "\n" + "\n".join(section))
