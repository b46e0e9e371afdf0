"""Work that must run in a fresh process (peak RSS is per process): `python -m benchmarks _worker KIND ...`."""
from __future__ import annotations

import json
import math
import resource
import time
import traceback
from typing import Any

import numpy as np

from graphrec.models.base import dot_scorer

from .common import peak_rss_mib, rss_mib, set_threads
from .knn import knn_worker, text_worker

GOWALLA_DEGREE = 810128 / 29858  # mean training events per user
GOWALLA_ITEMS_PER_USER = 40981 / 29858


def synthetic_dataset(target: int, seed: int = 7, holdout: float = 0.1):
    """A graphrec Dataset from synthetic.generate whose training split has ~`target` events.

    Users and items grow together (Gowalla's items/users ratio); a pilot at a tenth of the size calibrates
    events per user after duplicates are dropped; a seeded per-user `holdout` share becomes the test split.
    """
    from graphrec.data.dataset import Dataset
    from graphrec.data.splits import random_split
    from graphrec.data.synthetic import generate

    def make(num_users: int):
        num_items = max(10, int(num_users * GOWALLA_ITEMS_PER_USER))
        events = generate(num_users, num_items, mean_degree=GOWALLA_DEGREE, seed=seed)
        train, _, test = random_split(events, 0.0, holdout, seed)
        return num_users, num_items, train, test

    pilot_users = max(500, int(target / GOWALLA_DEGREE / 10))
    _, _, pilot_train, _ = make(pilot_users)
    per_user = len(pilot_train) / pilot_users
    num_users, num_items, train, test = make(max(100, int(round(target / per_user))))
    ids = lambda n: np.arange(n, dtype=np.int64)  # noqa: E731
    return Dataset(f"synthetic-{target}", num_users, num_items, train, None, {"test": test}, ids(num_users),
                   ids(num_items))


def gemm_topk_seconds(user_emb, item_emb, users, chunk: int, k: int) -> float:
    """Seconds of the evaluation's floor over `users`: torch.mm of each chunk's (chunk, d) user rows with the
    (d, items) item matrix, then topk(k) of the (chunk, items) scores; the same chunks as the Evaluator's."""
    import torch
    start = time.perf_counter()
    with torch.no_grad():
        for first in range(0, len(users), chunk):
            scores = torch.mm(user_emb[users[first:first + chunk]], item_emb.t())
            torch.topk(scores, k, dim=1)
    return time.perf_counter() - start


def scale_one(spec: dict[str, Any], threads: int) -> dict[str, Any]:
    """Generate one size, time a few training batches and (all or a sample of) full-ranking evaluation."""
    from .workloads import GraphrecSession
    out: dict[str, Any] = {"target": spec["size"], "rss_start_mib": rss_mib()}
    start = time.perf_counter()
    ds = synthetic_dataset(spec["size"])
    out.update(generate_s=time.perf_counter() - start, users=ds.num_users, items=ds.num_items,
               train=len(ds.train), test=len(ds.tests["test"]), rss_after_data_mib=rss_mib())
    batch_size = max(1, math.ceil(len(ds.train) / spec.get("batches_per_epoch", 400)))
    session = GraphrecSession(None, threads, quick=True, dataset=ds, batch_size=batch_size)
    graph = session.model.graph
    out.update(batch_size=batch_size, batches_per_epoch=session.num_batches, nnz=graph.nnz,
               nodes=graph.num_nodes, setup_s=session.setup_seconds, rss_after_setup_mib=rss_mib())
    batches = session.batches()
    for _ in range(spec.get("warmup", 1)):
        session.step(next(batches))
    times, cpu, faults = [], [], []
    for _ in range(spec["batches"]):
        t0, c0, f0 = time.perf_counter(), time.process_time(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        session.step(next(batches))
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
    overhead = session.epoch_overhead()
    mean = float(np.mean(times))
    out.update(batch_s=times, batch_cpu_s=cpu, batch_faults=faults, batch_mean_s=mean,
               ns_per_nnz=mean / graph.nnz * 1e9, epoch_overhead_s=overhead,
               epoch_s=overhead + mean * session.num_batches, peak_rss_train_mib=peak_rss_mib())
    if spec.get("eval", True):
        session.model.eval()
        t0 = time.perf_counter()
        user_emb, item_emb = session.model.embeddings()
        out["propagation_s"] = time.perf_counter() - t0
        evaluator = session.trainer.evaluators["test"]
        import torch
        users = evaluator.users
        n_users = len(users)
        probe_size = spec.get("eval_probe_users") or max(4 * evaluator.chunk_users, 512)
        probe = users[torch.randperm(n_users, generator=torch.Generator().manual_seed(0))[
            :min(n_users, probe_size)].to(users.device)].sort().values
        ours = floor = 0.0
        for part in probe.tensor_split(4):  # alternating rounds: load on a shared machine hits both alike
            t0 = time.perf_counter()
            evaluator.evaluate(dot_scorer(user_emb, item_emb), part)
            ours += time.perf_counter() - t0
            floor += gemm_topk_seconds(user_emb, item_emb, part, evaluator.chunk_users, max(evaluator.ks))
        per_user, floor_per_user = ours / len(probe), floor / len(probe)
        estimate = per_user * n_users
        out.update(eval_users=n_users, eval_chunk_users=evaluator.chunk_users, eval_probe_users=len(probe),
                   eval_estimate_s=estimate, eval_per_user_s=per_user, eval_floor_per_user_s=floor_per_user)
        if estimate <= spec.get("eval_budget_s", 300):
            t0 = time.perf_counter()
            result = evaluator.evaluate(dot_scorer(user_emb, item_emb))
            out.update(eval_s=time.perf_counter() - t0, eval_measured=True,
                       recall20=result.means().get("recall@20"))
        else:
            out.update(eval_s=estimate, eval_measured=False)
        out["peak_rss_mib"] = peak_rss_mib()
    else:
        out["peak_rss_mib"] = peak_rss_mib()
    session.close()
    return out


def train_memory(spec: dict[str, Any], threads: int) -> dict[str, Any]:
    """graphrec training: peak RSS after `batches` batches (a new epoch when one ends)."""
    from .workloads import GraphrecSession
    out = {"rss_after_import_mib": rss_mib()}
    session = GraphrecSession(spec.get("data"), threads, quick=spec.get("quick", False))
    out.update(rss_after_setup_mib=rss_mib(), peak_after_setup_mib=peak_rss_mib())
    done, start = 0, time.perf_counter()
    while done < spec["batches"]:
        for batch in session.batches():
            session.step(batch)
            done += 1
            if done >= spec["batches"]:
                break
    out.update(batches=done, batches_per_epoch=session.num_batches, train_s=time.perf_counter() - start,
               rss_end_mib=rss_mib(), peak_rss_mib=peak_rss_mib())
    session.close()
    return out


def eval_memory(spec: dict[str, Any], threads: int) -> dict[str, Any]:
    """graphrec evaluation: peak RSS of propagating the embeddings and ranking all test users."""
    from .workloads import GraphrecSession
    out = {"rss_after_import_mib": rss_mib()}
    session = GraphrecSession(spec.get("data"), threads, quick=spec.get("quick", False))
    out.update(rss_after_setup_mib=rss_mib(), peak_after_setup_mib=peak_rss_mib())
    start = time.perf_counter()
    session.model.eval()
    user_emb, item_emb = session.model.embeddings()
    evaluator = session.trainer.evaluators["test"]
    result = evaluator.evaluate(dot_scorer(user_emb, item_emb))
    out.update(eval_s=time.perf_counter() - start, users=result.num_users, rss_end_mib=rss_mib(),
               peak_rss_mib=peak_rss_mib(), largest_chunk_elements=evaluator.largest_chunk_elements)
    session.close()
    return out


def pyg_memory(spec: dict[str, Any], threads: int) -> dict[str, Any]:
    """PyG LightGCN training (standard loop): peak RSS after a few batches."""
    import torch
    from .workloads import PygLoop, graphrec_config
    out = {"rss_after_import_mib": rss_mib()}
    import contextlib
    import io
    import tempfile
    from graphrec.data.loader import load_dataset
    with contextlib.redirect_stderr(io.StringIO()):  # only the reader: no graphrec model or trainer in this process
        ds = load_dataset(graphrec_config(spec.get("data"), threads, tempfile.gettempdir(), spec.get("quick", False)))
    loop = PygLoop.build(ds.train.user, ds.train.item, ds.num_users, ds.num_items)
    del ds
    out.update(rss_after_setup_mib=rss_mib())
    loader = loop.loader()
    start = time.perf_counter()
    for _ in range(spec["batches"]):
        loop.step(next(loader))
    out.update(batches=spec["batches"], train_s=time.perf_counter() - start, rss_end_mib=rss_mib(),
               peak_rss_mib=peak_rss_mib(), torch_threads=torch.get_num_threads())
    return out


def ood_split(spec: dict[str, Any], threads: int) -> dict[str, Any]:  # noqa: ARG001
    """The popularity split of benchmarks/ood.py, in its own process (its peak RSS is the split's)."""
    from .ood import popularity_split
    return popularity_split(spec)


KINDS = {"scale_one": scale_one, "train_memory": train_memory, "eval_memory": eval_memory, "pyg_memory": pyg_memory,
         "ood_split": ood_split, "knn_graph": knn_worker, "text_features": text_worker}


def run_worker_main(kind: str, spec: dict[str, Any], out_path: str, threads: int) -> int:
    """Entry of `python -m benchmarks _worker`: run KINDS[kind], write its JSON (or the error) to out_path."""
    set_threads(threads)
    from graphrec.allocator import tune_allocator
    tune_allocator()
    try:
        result = KINDS[kind](spec, threads)
        code = 0
    except Exception as exc:  # the parent prints the reason in its table
        result = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-1500:],
                  "peak_rss_mib": peak_rss_mib()}
        code = 1
    with open(out_path, "w") as fh:
        json.dump(result, fh, default=float)
    return code
