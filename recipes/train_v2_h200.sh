#!/usr/bin/env bash
# Reference v2 on a lent H200, as ONE device call (the `run` tool), at most 12 minutes. No test
# depends on it. Two modes (TRAIN):
#
#   TRAIN=all      the whole chain, the first click included: what issue 12's first-click target
#                  needs (CPU fine-tunes of the base lost held-out mIoU@1: docs/model_card.md,
#                  sessions 5, 6 and 12). BatchNorm trains on batches of 64 crops (the CPU's 16 drifted).
#   TRAIN=refiner  the click refiner alone, the base frozen (the CPU recipe's second stage at GPU scale).
#
# It continues from a trained chain instead of starting over: by default the shipped reference v2,
# which is tracked; its prior is read from the same file. What reaches the device is the working
# tree alone (64 MiB; the tracked files take about 52), never ../shared: pack the training data
# first and carry it. What comes back is at most 8 files of 16 MiB: the new checkpoint in fp16,
# split in parts, its reports and nvidia-smi samples.
#
#   1. here:    .venv/bin/python recipes/pack_device_data.py --out .devdata --budget-mib 10 \
#                   ../shared/data-train/ECSSD ../shared/data-train/DUTS-TR-subset \
#                   ../shared/data-train/COCO-train-mini ../shared/data/coco128-seg
#               (about 10 MiB is what the 64 MiB leave beside the tracked files: 403 of the 2,805 images)
#   2. device:  run(command="TRAIN=all bash recipes/train_v2_h200.sh", carry=[".devdata"], timeout_s=720)
#   3. here:    cat FILES_AT/run/segmenter_fp16.pt.part* > runs/h200/segmenter_fp16.pt, then
#               `oace eval --checkpoint runs/h200/segmenter_fp16.pt --dataset GrabCut ...` against
#               `reference`, and the int8 bundle from it (`oace export`) before it may ship.
#
#   CPU smoke run of the same command (seconds):
#   TRAIN=all CUDA=0 PY=.venv/bin/python MINUTES=0.3 BATCH=2 WORKERS=0 \
#       EXTRA="--limit 8 --val-max 2 --val-composites 0 --val-robot-clicks 0" OUT=runs/h200_smoke bash recipes/train_v2_h200.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/h200}
TRAIN=${TRAIN:-all}
START=${START:-model/weights/oace_reference_v2_fp16.pt}
PRIOR=${PRIOR:-$START}  # a segmenter checkpoint's prior, or a prior.pt
MINUTES=${MINUTES:-9}   # training budget; loading, validation and the copy-back fit in the rest of 12
BATCH=${BATCH:-64}
WORKERS=${WORKERS:-14}
CUDA=${CUDA:-1}         # 0: allow a CPU smoke run
EXTRA=${EXTRA:-}
PY=${PY:-python3}      # .venv/bin/python for the smoke run
PACK=${PACK:-.devdata}  # recipes/pack_device_data.py's output, carried
if [ -z "${DATA:-}" ]; then
    [ -f "$PACK/DATA" ] || { echo "recipes/train_v2_h200.sh: $PACK/DATA not found: run recipes/pack_device_data.py and carry $PACK, or set DATA" >&2; exit 2; }
    DATA=$(cat "$PACK/DATA")
fi
case "$TRAIN" in
    all) LR=${LR:-5e-4} ;;       # the paper's Adam rate at batch 64
    refiner) LR=${LR:-2e-3} ;;
    *) echo "recipes/train_v2_h200.sh: TRAIN=$TRAIN: expected all or refiner" >&2; exit 2 ;;
esac
for f in "$START" "$PRIOR"; do
    [ -f "$f" ] || { echo "recipes/train_v2_h200.sh: $f not found (carry it to the device)" >&2; exit 2; }
done
"$PY" -c "import torch, cv2, scipy, tqdm, PIL; assert $CUDA == 0 or torch.cuda.is_available(), 'no CUDA device'" \
    || { echo "recipes/train_v2_h200.sh: the device lacks a package the trainer needs, or CUDA (see above)" >&2; exit 2; }
mkdir -p "$OUT"
# The device has no install of this project: lay out the `oace` package as setup.cfg's package_dir
# maps it (oace.model = model, ...) with links in a temporary folder, and import from there.
SITE=$(mktemp -d)
"$PY" - "$SITE" <<'PY'
import configparser, os, sys
site, root = sys.argv[1], os.getcwd()
cfg = configparser.ConfigParser()
cfg.read("setup.cfg")
os.mkdir(os.path.join(site, "oace"))
mapped = dict(line.replace(" ", "").split("=") for line in cfg["options"]["package_dir"].strip().splitlines())
for name in os.listdir("oace"):
    os.symlink(os.path.join(root, "oace", name), os.path.join(site, "oace", name))
for package, folder in mapped.items():
    os.symlink(os.path.join(root, folder), os.path.join(site, *package.split(".")))
PY
export PYTHONPATH="$SITE"
SMI=
if command -v nvidia-smi > /dev/null; then
    nvidia-smi dmon -s u -d 20 > "$OUT/gpu_util.txt" 2>&1 &
    SMI=$!
fi
trap '[ -z "$SMI" ] || kill $SMI 2>/dev/null || true; rm -rf "$SITE"' EXIT
# shellcheck disable=SC2086  # EXTRA is a list of flags
"$PY" -m oace.cli train msfnet --preset segmenter --prior "$PRIOR" --weights "$START" \
    --data "$DATA" --out "$OUT/run" --size 512 --crop 320 --batch "$BATCH" --lr "$LR" --amp --workers "$WORKERS" \
    --train "$TRAIN" --max-iterative 6 --schedule cosine --max-minutes "$MINUTES" --val-max 64 --epochs 200 \
    --no-progress $EXTRA
# only what the session needs back (at most 8 files of 16 MiB come back from $OUT): the best
# checkpoint in fp16, in parts of 15 MiB, and the reports
rm -rf "$OUT/run/tb" "$OUT/run/last.pt" "$OUT/run/best.pt"
"$PY" - "$OUT/run/segmenter.pt" "$OUT/run/segmenter_fp16.pt" <<'PY'
import sys
from oace.model.registry import load_model_with_meta, save_checkpoint
src, dst = sys.argv[1:3]
loaded = load_model_with_meta(src)
own = ("dtype", "git_sha", "created_utc", "toolkit_version")  # save_checkpoint writes these itself
save_checkpoint(loaded.model, dst, meta={k: v for k, v in loaded.meta.items() if k not in own}, half=True)
PY
rm "$OUT/run/segmenter.pt"
split -b 15m -d "$OUT/run/segmenter_fp16.pt" "$OUT/run/segmenter_fp16.pt.part"
rm "$OUT/run/segmenter_fp16.pt"
ls -la "$OUT" "$OUT/run"
