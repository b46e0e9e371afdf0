"""Runs INSIDE RecBole's own virtualenv (no graphrec imports): times LightGCN training batches and full-sort evaluation.

    TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 python recbole_driver.py --data-dir DIR --dataset gowalla --out result.json

DIR holds the split as RecBole atomic files DIR/gowalla/gowalla.{train,valid,test}.inter (benchmark_filename).
The training loop is RecBole's Trainer._train_epoch body (dataloader with its negative sampling, calculate_loss,
backward, Adam step), timed batch by batch; evaluation is RecBole's own Trainer.evaluate on the test loader.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
import warnings

# run as a script, this folder is sys.path[0]; keep it from shadowing packages of the RecBole venv
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--dataset", default="gowalla")
    parser.add_argument("--out", required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--full", action="store_true", help="time one whole epoch instead of --batches")
    parser.add_argument("--no-train", action="store_true")
    parser.add_argument("--no-eval", action="store_true")
    parser.add_argument("--eval-batch-size", type=int, default=2 ** 25,
                        help="RecBole eval_batch_size (full sort: users per batch = this // num_items)")
    parser.add_argument("--batch-size", type=int, default=2048)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    result: dict = {"stage": "import"}

    def save() -> None:
        result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        with open(args.out, "w") as fh:
            json.dump(result, fh)

    try:
        t0 = time.perf_counter()
        import torch
        import recbole
        from recbole.config import Config
        from recbole.data import create_dataset, data_preparation
        from recbole.model.general_recommender import LightGCN
        from recbole.trainer import Trainer
        from recbole.utils import init_seed
        result.update(recbole=recbole.__version__, torch=torch.__version__, import_s=time.perf_counter() - t0)
        config = Config(model="LightGCN", dataset=args.dataset, config_dict={
            "data_path": args.data_dir, "benchmark_filename": ["train", "valid", "test"],
            "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "load_col": {"inter": ["user_id", "item_id"]},
            "embedding_size": 64, "n_layers": 3, "reg_weight": 1e-4, "require_pow": True,
            "learning_rate": 0.001, "train_batch_size": args.batch_size, "epochs": 1,
            "train_neg_sample_args": {"distribution": "uniform", "sample_num": 1},
            "eval_args": {"split": {"RS": [0.8, 0.1, 0.1]}, "order": "RO", "group_by": "user", "mode": "full"},
            "metrics": ["Recall", "NDCG", "Precision", "Hit", "MRR"], "topk": [20], "valid_metric": "Recall@20",
            "eval_batch_size": args.eval_batch_size, "device": "cpu", "use_gpu": False, "gpu_id": "",
            "show_progress": False, "state": "WARNING", "seed": 2020, "reproducibility": True,
            "checkpoint_dir": os.path.join(os.getcwd(), "saved"), "save_dataset": False,
            "save_dataloaders": False, "log_wandb": False, "worker": 0,
        })
        init_seed(config["seed"], config["reproducibility"])
        torch.set_num_threads(args.threads)
        result["threads"] = torch.get_num_threads()
        result["stage"] = "dataset"
        t0 = time.perf_counter()
        dataset = create_dataset(config)
        train_data, _valid_data, test_data = data_preparation(config, dataset)
        result["data_prep_s"] = time.perf_counter() - t0
        result.update(users=int(dataset.user_num), items=int(dataset.item_num),
                      train_interactions=int(len(train_data.dataset)), test_interactions=int(len(test_data.dataset)))
        result["stage"] = "model"
        t0 = time.perf_counter()
        model = LightGCN(config, train_data.dataset).to(config["device"])
        trainer = Trainer(config, model)
        result["model_build_s"] = time.perf_counter() - t0  # includes RecBole's dok_matrix adjacency build
        result["batches_per_epoch"] = len(train_data)

        if not args.no_train:
            result["stage"] = "train"
            model.train()
            stop = None if args.full else args.warmup + args.batches
            batch_s, load_s, losses = [], [], []
            epoch_start = time.perf_counter()
            mark = time.perf_counter()
            for index, interaction in enumerate(train_data):  # body of recbole Trainer._train_epoch
                loaded = time.perf_counter()
                interaction = interaction.to(trainer.device)
                trainer.optimizer.zero_grad()
                loss = model.calculate_loss(interaction)
                trainer._check_nan(loss)
                loss.backward()
                trainer.optimizer.step()
                losses.append(loss.item())
                end = time.perf_counter()
                if index >= args.warmup:
                    batch_s.append(end - mark)
                    load_s.append(loaded - mark)
                mark = time.perf_counter()
                if stop is not None and index + 1 >= stop:
                    break
            if args.full:
                result["full_epoch_s"] = time.perf_counter() - epoch_start
            result.update(batch_s=batch_s, dataloader_s=load_s, last_loss=losses[-1], timed_batches=len(batch_s))
        if not args.no_eval:
            result["stage"] = "eval"
            t0 = time.perf_counter()
            metrics = trainer.evaluate(test_data, load_best_model=False, show_progress=False)
            result["eval_s"] = time.perf_counter() - t0
            result["eval_users_per_batch"] = int(test_data.step)
            result["metrics"] = {k: float(v) for k, v in metrics.items()}
        result["stage"] = "done"
    except Exception as exc:  # report, do not hide: the caller prints it as the reason
        import traceback
        result["error"] = f"{type(exc).__name__}: {exc}"
        result["traceback"] = traceback.format_exc()[-2000:]
        save()
        return 1
    save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
