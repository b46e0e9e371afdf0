"""A stand-in for `graphrec train` in sweep-agent tests: same command line and run folder files, no torch, ~50 ms.

valid/recall@10 at evaluation e is (e + 1) / epochs * score(lr) with score(lr) = 1 / (1 + (log10(lr) + 2)^2), so
lr = 0.01 is best. Environment: FAKE_SLEEP seconds per epoch; FAKE_FAIL_LR an lr for which the run crashes at
once; FAKE_DIVERGE_LR one for which it logs every epoch, then exits 2 without metrics.json (as graphrec does when
the loss becomes nan). SIGTERM exits 143 as graphrec does.
"""
import json
import math
import os
import signal
import sys
import time
from datetime import datetime
from pathlib import Path

import yaml


def main() -> int:
    """Parse `train BASE --set k=v ...`, write a run folder with log.jsonl and metrics.json."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args = sys.argv[1:]
    sets = {}
    for i, arg in enumerate(args):
        if arg == "--set":
            key, value = args[i + 1].split("=", 1)
            sets[key] = yaml.safe_load(value)
    base = yaml.safe_load(Path(args[1]).read_text())
    lr = float(sets.get("train.lr", base["train"]["lr"]))
    epochs = int(sets.get("train.epochs", base["train"]["epochs"]))
    if os.environ.get("FAKE_FAIL_LR") and math.isclose(lr, float(os.environ["FAKE_FAIL_LR"])):
        print("Traceback (most recent call last):\nRuntimeError: fake crash for lr", lr, file=sys.stderr)
        return 1
    first = Path(sets["output_dir"]) / f"{sets['name']}-{datetime.now():%Y%m%d-%H%M%S}"
    run_dir, suffix = first, 1
    while True:
        try:
            run_dir.mkdir(parents=True)
            break
        except FileExistsError:
            run_dir, suffix = Path(f"{first}-{suffix}"), suffix + 1
    (run_dir / "config.yaml").write_text(yaml.safe_dump(sets))
    score = 1.0 / (1.0 + (math.log10(lr) + 2.0) ** 2)
    best = 0.0
    for epoch in range(epochs):
        time.sleep(float(os.environ.get("FAKE_SLEEP", "0")))
        value = (epoch + 1) / epochs * score
        best = max(best, value)
        with open(run_dir / "log.jsonl", "a") as log:
            log.write(json.dumps({"epoch": epoch, "valid/recall@10": value}) + "\n")
    if os.environ.get("FAKE_DIVERGE_LR") and math.isclose(lr, float(os.environ["FAKE_DIVERGE_LR"])):
        print(f"graphrec: error: loss became nan at epoch {epochs}", file=sys.stderr)
        return 2
    (run_dir / "metrics.json").write_text(json.dumps({"valid/recall@10": best, "test/recall@10": best / 2}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
