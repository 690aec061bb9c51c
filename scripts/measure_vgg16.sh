#!/usr/bin/env bash
# VGG16 at 160x160: float32 vs int8, TFLite and ONNX, latency on this machine.
#   bash scripts/measure_vgg16.sh WORKDIR REPORT.json     (REPORT "-": build the models only)
# The weights do not change the latency, so VGG16 is built with --weights none
# (ImageNet weights cannot be downloaded offline) and trained one epoch on 64 of
# the shared photos; the parity gate is loosened because an untrained model's
# answers are noise. The report names the CPU and its int8 instructions
# (avx512_vnni, avx_vnni, amx_int8, asimddp: benchmarks/latency.py).
# Needs ../shared/data/cats_vs_dogs_small. An existing WORKDIR/models is reused
# (set FRESH=1 to rebuild it).
set -euo pipefail
work=${1:?WORKDIR}; report=${2:?REPORT.json}
root=$(cd "$(dirname "$0")/.." && pwd)
photos=${PHOTOS:-$root/../shared/data/cats_vs_dogs_small}
bin=${BIN:-$root/.venv/bin}
py=${PY:-$bin/python}
test -d "$photos/cat" || { echo "measure_vgg16: error: photos not found at $photos" >&2; exit 2; }
models="$work/models"
files=("$models/model_float32.tflite" "$models/model_int8.tflite" "$models/model_float32.onnx" "$models/model_int8.onnx")
have=1; for f in "${files[@]}"; do test -f "$f" || have=0; done
if [ "${FRESH:-0}" = 1 ] || [ "$have" = 0 ]; then
  rm -rf "$work"; mkdir -p "$work/data/cat" "$work/data/dog"
  for c in cat dog; do ls "$photos/$c" | head -32 | while read -r f; do cp "$photos/$c/$f" "$work/data/$c/$f"; done; done
  "$bin/train-model" --model vgg16 --weights none --data "$work/data" --image-size 160 --epochs 1 --batch-size 16 \
    --no-augment --output "$work/run" --force
  "$bin/export-model" "$work/run" --format tflite,onnx --quantize none,int8 --calibration-samples 32 \
    --gate point --max-accuracy-drop 100 --max-prob-diff 1 --output "$models" --force
fi
[ "$report" = "-" ] && exit 0
"$py" "$root/benchmarks/latency.py" "${files[@]}" --threads 1,2 --warmup 3 --runs 30 --json "$report" --force
