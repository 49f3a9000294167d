#!/usr/bin/env bash
# Reference v2 on a 2-core CPU (issues 12 and 16): the recipe behind model/weights/oace_reference_v2_fp16.pt.
#
#   bash recipes/train_v2_cpu.sh            # from the repo root, after `make venv`; about 1 hour 40 min (2 cores)
#   nohup bash recipes/train_v2_cpu.sh > runs/v2.log 2>&1 &   # as a background job
#
# Two stages, each a plain `oace train` with a wall-clock budget (--max-minutes; the cosine
# learning rate follows the budget). Run it again after an interruption: a finished stage is
# skipped (its .done marker), an interrupted one continues from its last saved epoch (--resume).
# bf16 autocast (--amp) is 1.7x faster than fp32 on AVX512-BF16/AMX CPUs; on others drop --amp.
set -euo pipefail
cd "$(dirname "$0")/.."
OACE=${OACE:-.venv/bin/oace}
RUNS=${RUNS:-runs/v2}
SCALE=${SCALE:-1}   # multiply every budget (0.1 for a smoke run)
DATA=${DATA:-salient:../shared/data-train/ECSSD,salient:../shared/data-train/DUTS-TR-subset,yolo_seg:../shared/data-train/COCO-train-mini,yolo_seg:../shared/data/coco128-seg}
COMMON=(--data "$DATA" --size 512 --crop 320 --batch 16 --amp --schedule cosine --val-max 32 --epochs 50 --no-progress)

minutes() { python3 -c "print(max(0.2, $1 * $SCALE))"; }

stage() {  # stage NAME MINUTES oace-train-arguments...
    local name=$1 budget=$2 out="$RUNS/$1"
    shift 2
    if [ -f "$out/.done" ]; then echo "== $name: done already ($out)"; return; fi
    local resume=()
    [ -f "$out/last.pt" ] && resume=(--resume)
    echo "== $name: $(date -u +%H:%M:%S) -> $out (${budget} min)"
    "$OACE" train "$@" "${COMMON[@]}" --out "$out" --max-minutes "$(minutes "$budget")" "${resume[@]}"
    touch "$out/.done"
}

# 1. the OACE prior: composites + instance sets, hard negatives from other objects and a band.
stage prior 20 prior --lr 5e-4
# 2. the chain with its click refiner (session 7, docs/model_card.md): the segmenter preset built
#    function-preservingly from reference v1 and the stage-1 prior (model/chain.py: step 0 gives
#    v1's one-click masks), then the refiner alone trained (--train refiner): the frozen base runs
#    once per sample, each simulated click (up to 6) costs a refiner pass only, the clicked-disk
#    loss makes every tap count, composites teach which object was clicked.
stage refiner 75 msfnet --preset segmenter --prior "$RUNS/prior/prior.pt" --weights reference_v1 --train refiner \
    --lr 1e-3 --max-iterative 6 --val-composites 8 --val-robot-clicks 4
echo "== done: $RUNS/refiner/segmenter.pt"
