#!/usr/bin/env bash
# The GPU measurements of docs/benchmarks.md in one go, on one CUDA device:
#
#     bash benchmarks/gpu.sh [RESULTS]        # about 10 minutes on an H100 or H200
#
# 1. ad_step.py --compile: one attraction-diffusion step against one energy-and-gradient
#    call (digits MLP and Mueller-Brown at 128 and 1,024 rows; operations per step), eager
#    and compiled (several steps fused per call; the first call's compile time too).
# 2. map_scale.py --ranks 1: whole maps (Mueller-Brown; a digits model, 32 chains) and the
#    ladder's levels together against one after another (it trains its own models).
# 3. The 32x32 image model end to end: `landscape train --preset digits32-nonconvergent`,
#    then `landscape map` at its defaults, per-stage seconds from `landscape info --json`;
#    with COMPILE_MAP=1 the same map again with --compile (limit MAPC_S).
#
# PYTHON [python3] must hold a CUDA build of torch and the package's other dependencies
# (h5py, networkx, click, tqdm, scikit-learn, scipy, matplotlib): the package is installed
# into it from this checkout without them (no network needed). Each part runs under a time
# limit of its own (seconds: AD_S, SCALE_S, TRAIN_S, MAP_S) and leaves its log in RESULTS
# [gpu-results] with a line in RESULTS/summary.txt; a part cut short leaves what it
# printed, and a map cut short keeps its progress (rerun with MAP_ARGS=--resume).
# DEVICE=cpu QUICK=1 runs every part, shortened, on the CPU: a check of the script itself.
set -u
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
OUT=${1:-gpu-results}
AD_S=${AD_S:-240} SCALE_S=${SCALE_S:-240} TRAIN_S=${TRAIN_S:-240} MAP_S=${MAP_S:-480} MAPC_S=${MAPC_S:-480}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
summary() { echo "$*" | tee -a "$OUT/summary.txt"; }
part() {  # part NAME LIMIT COMMAND...: run it, log it, say how it ended
    local name=$1 limit=$2 t0=$SECONDS code
    shift 2
    timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
    code=$?
    summary "$name: exit $code after $((SECONDS - t0)) s (limit $limit s)$([ $code = 124 ] && echo ': cut short')"
}

if ! "$PYTHON" -c "import landscape.cli.main" 2>/dev/null; then
    "$PYTHON" -m pip install -q --no-deps --no-build-isolation -e . >"$OUT/install.log" 2>&1 \
        || { summary "installing the package failed: see $OUT/install.log"; exit 1; }
fi
LANDSCAPE=$("$PYTHON" -c 'import os, sys; print(os.path.join(os.path.dirname(sys.executable), "landscape"))')
"$PYTHON" - "$DEVICE" >"$OUT/device.txt" 2>&1 <<'EOF'
import platform, sys, torch
device = sys.argv[1]
print("torch", torch.__version__, "| host", platform.machine(), "| device", device,
      torch.cuda.get_device_name() if device.startswith("cuda") else "")
if device.startswith("cuda") and not torch.cuda.is_available():
    sys.exit("no CUDA device")
EOF
[ $? = 0 ] || { summary "$(cat "$OUT/device.txt")"; exit 1; }
summary "$(cat "$OUT/device.txt")"

if [ "${QUICK:-0}" = 1 ]; then
    ad=(--repeats 1 --steps 40) train=(--steps 5) map=(--chains 8 --rounds 1 --max-steps 100 --patience 20
        --attempts 1 --neighbours 2 --ladder 1 --ladder-extend 0 --no-refine)
else
    ad=() train=() map=()
fi

part ad_step "$AD_S" "$PYTHON" benchmarks/ad_step.py --device "$DEVICE" --compile "${ad[@]}"
if [ "${QUICK:-0}" != 1 ]; then
    part map_scale "$SCALE_S" "$PYTHON" benchmarks/map_scale.py --device "$DEVICE" --ranks 1
fi
work=${WORK:-$(mktemp -d)}  # the model and its map (their run folders would crowd RESULTS)
ckpt="$work/d32n.pt"
[ -f "$ckpt" ] || part train_32x32 "$TRAIN_S" "$LANDSCAPE" train --preset digits32-nonconvergent --out "$ckpt" \
    --device "$DEVICE" --quiet "${train[@]}"
if [ -f "$ckpt" ]; then
    describe() {  # describe MAP: minima, basins per level, seconds per stage
        "$PYTHON" - "$1" <<'EOF'
import json, sys
import h5py
with h5py.File(sys.argv[1], "r") as f:
    seconds = json.loads(f.attrs["seconds"])
    levels = [int(f[f"levels/{k}"].attrs["basins"]) for k in sorted(f["levels"], key=int)]
    print(f"{f['minima'].attrs['count']} minima, basins per level {levels}, seconds per stage",
          {k: round(float(v), 1) for k, v in seconds.items()})
EOF
    }
    part map_32x32 "$MAP_S" "$LANDSCAPE" map "$ckpt" --out "$work/d32n.h5" --device "$DEVICE" "${map[@]}" \
        ${MAP_ARGS:-}
    [ -f "$work/d32n.h5" ] && summary "32x32 map: $(describe "$work/d32n.h5")"
    if [ "${COMPILE_MAP:-0}" = 1 ]; then
        part map_32x32_compiled "$MAPC_S" "$LANDSCAPE" map "$ckpt" --out "$work/d32n_c.h5" --device "$DEVICE" \
            --compile "${map[@]}"
        [ -f "$work/d32n_c.h5" ] && summary "32x32 map, --compile: $(describe "$work/d32n_c.h5")"
    fi
fi
summary "done: logs in $OUT"
