#!/usr/bin/env bash
# The v2 recipe's last stage on a lent H200, as ONE device call (the `run` tool), at most 12 minutes.
#
# It continues from the best CPU checkpoint instead of starting over: the refiner run's segmenter.pt
# and the prior it was trained with (pass them with `carry`, they are ignored files), trains the
# refiner with the same settings at GPU scale (fp16 autocast, batch 64, workers), and leaves the new
# checkpoint, its reports and nvidia-smi samples under $OUT for the session to fetch. No test
# depends on it. Usage on the device machine, from the repo root:
#
#   START=runs/v2/refiner/segmenter.pt PRIOR=runs/v2/prior/prior.pt bash recipes/train_v2_h200.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/h200}
START=${START:-runs/v2/refiner/segmenter.pt}
PRIOR=${PRIOR:-runs/v2/prior/prior.pt}
MINUTES=${MINUTES:-9}   # training budget; loading, validation and the copy-back fit in the rest of 12
DATA=${DATA:-salient:../shared/data-train/ECSSD,salient:../shared/data-train/DUTS-TR-subset,yolo_seg:../shared/data-train/COCO-train-mini,yolo_seg:../shared/data/coco128-seg}
for f in "$START" "$PRIOR"; do
    [ -f "$f" ] || { echo "recipes/train_v2_h200.sh: $f not found (carry it to the device)" >&2; exit 2; }
done
python3 -c "import torch, pycocotools, cv2, scipy, tqdm; assert torch.cuda.is_available(), 'no CUDA device'" \
    || { echo "recipes/train_v2_h200.sh: the device lacks a package the trainer needs (see above)" >&2; exit 2; }
mkdir -p "$OUT"
nvidia-smi dmon -s u -d 20 > "$OUT/gpu_util.txt" 2>&1 &
SMI=$!
trap 'kill $SMI 2>/dev/null || true' EXIT
PYTHONPATH=. python3 -m oace.cli train msfnet --preset segmenter --prior "$PRIOR" --weights "$START" \
    --data "$DATA" --out "$OUT/refiner" --size 512 --crop 320 --batch 64 --lr 2e-3 --amp --workers 14 --train refiner \
    --max-iterative 6 --schedule cosine --max-minutes "$MINUTES" --val-max 64 --epochs 200 --no-progress
# only what the session needs back (the run tool returns files under $OUT): weights and reports
rm -f "$OUT/refiner/last.pt" "$OUT/refiner/best.pt"
ls -la "$OUT/refiner"
