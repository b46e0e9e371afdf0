#!/usr/bin/env bash
# GPU readiness run (docs/benchmarks.md, "GPU runs"): the CUDA tests, then the epoch, eval, scale and tta benchmarks
# with graphrec on the GPU, each step under its own time limit, about 9 minutes in all. Every step's output lands in
# $OUT (one file per step, the tables printed by the benchmarks plus summary.txt with each step's exit status);
# nothing is written to docs/ there: the rows are appended here after the run.
#
#   bash benchmarks/gpu_check.sh [DATA_DIR]
#
# DATA_DIR: a LightGCN-format folder (train.txt, test.txt), e.g. a copy of Gowalla carried into the working tree
# (the shared data does not travel to the device machine); without it epoch, eval and tta use --quick synthetic data.
# Needs no network. DEVICE=cpu SIZES=30k THREADS=1 bash benchmarks/gpu_check.sh rehearses it without a GPU.
# STEPS (default: all but suite and the contrastive pair) picks steps by name, e.g. STEPS="suite cuda_tests epoch tta";
# `suite` runs the whole test suite there, where `device: auto` puts every trained test model on the GPU;
# STEPS="contrastive contrastive_memory" (a second call, at most 4 minutes; needs DATA_DIR, a Gowalla copy) times the
# contrastive models' epochs against LightGCN's and their peak GPU memory (issue 21's targets, docs/contrastive.md).
# Packages the machine lacks (pydantic) travel as wheels installed on PYTHONPATH, which is kept.
set -u -o pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 WANDB_MODE=disabled OMP_NUM_THREADS=${OMP_NUM_THREADS:-8}
OUT=${OUT:-/tmp/graphrec-gpu-check}
mkdir -p "$OUT"
DATA=${1:-}
THREADS=${THREADS:-8}
COMMON=(--device "${DEVICE:-cuda}" --threads "$THREADS" --no-write)
if [ -n "$DATA" ]; then SOURCE=(--data "$DATA"); else SOURCE=(--quick); fi

STEPS=${STEPS:-cuda_tests epoch eval scale tta tta_fast tta_xsimgcl tta_refit}

step() {  # step NAME SECONDS COMMAND...: run with a time limit, output to $OUT/NAME.txt, status to summary.txt
    local name=$1 limit=$2
    shift 2
    [[ " $STEPS " == *" $name "* ]] || return 0
    local start=$SECONDS
    timeout --kill-after=10 "$limit" "$@" >"$OUT/$name.txt" 2>&1
    local code=$?
    echo "$name: exit $code in $((SECONDS - start)) s (limit $limit s): $*" | tee -a "$OUT/summary.txt"
}

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1
  python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())"
} >"$OUT/summary.txt"
step suite 170 python -m pytest -q -p no:cacheprovider -rfE tests/
step cuda_tests 75 python -m pytest -q -p no:cacheprovider tests/test_cuda.py
step epoch 80 python -m benchmarks epoch "${SOURCE[@]}" "${COMMON[@]}" --no-recbole --rounds 3 --pyg-batches 5
step eval 70 python -m benchmarks eval "${SOURCE[@]}" "${COMMON[@]}" --no-recbole --subset 500 --repeats 2
step scale 140 python -m benchmarks scale "${COMMON[@]}" --sizes "${SIZES:-1M,3M}" --eval-budget 60 --timeout 65
# time to the paper's Recall@20: the paper's settings, and the core's fast settings (found on test on the CPU: the
# CPU curve docs/benchmarks-tta-b8192-k2-dns64-cos20.csv), the latter also under the refit protocol
FAST=(--batch-size 8192 --lr 0.005 --lr-schedule cosine --epochs 20 --eval-every 2 --num-negatives 2
      --negative-candidates 64)
step tta 55 python -m benchmarks tta "${SOURCE[@]}" "${COMMON[@]}" --minutes 0.75 --eval-every 5
step tta_fast 90 python -m benchmarks tta "${SOURCE[@]}" "${COMMON[@]}" --minutes 1 "${FAST[@]}"
step tta_xsimgcl 55 python -m benchmarks tta "${SOURCE[@]}" "${COMMON[@]}" --minutes 0.75 --eval-every 5 \
    --model xsimgcl --model-set num_layers=2
step tta_refit 100 python -m benchmarks tta "${SOURCE[@]}" "${COMMON[@]}" --protocol refit "${FAST[@]}" --patience 0
# the contrastive models' epoch time relative to LightGCN's at batch 2048, 2 layers, and each one's peak GPU memory
CONTRASTIVE=(python -m benchmarks.contrastive --device "${DEVICE:-cuda}" --threads "$THREADS" --data gowalla
             --data-path "${DATA:-missing: pass a Gowalla copy as DATA_DIR}")
step contrastive 90 "${CONTRASTIVE[@]}" --rounds 10 --per-round 3 --warmup 3
step contrastive_memory 150 "${CONTRASTIVE[@]}" --rounds 2 --per-round 3 --peak-memory
