#!/usr/bin/env bash
# The GPU measurements of docs/benchmarks.md in one go, on one CUDA device:
#
#     bash benchmarks/gpu.sh [RESULTS]        # about 12 minutes on an H100 or H200 (the default PARTS)
#
# Parts (PARTS, run in the order given) [default: tests_cuda ad_step string_step map_scale map map_compiled]:
#   tests_cuda    tests/test_cuda.py: map, funnel, diagnose, sample and check on the GPU
#                 (where CI, without one, skips them); a minute or two.
#   ad_step       ad_step.py --compile: one attraction-diffusion step against one energy-and-
#                 gradient call (the digits MLP, Mueller-Brown and the 32x32 presets' network
#                 at 128 and 1,024 rows; operations per step), eager and compiled (several
#                 steps fused per call; the first call's compile time too).
#   ad_window     ad_window.py: the compiled window of attraction-diffusion steps alone, as the
#                 mapper compiles it, as a CUDA graph (mode="reduce-overhead") and with inductor's
#                 C++ wrapper (cpp_wrapper: the calls of its kernels compiled), against the
#                 mapper's whole compiled step (what its eager noise, paths and host sync cost) and
#                 one energy-and-gradient call; the digits MLP, Mueller-Brown, the 32x32 network.
#   string_step   string_step.py --compile: one iteration of the string method against its two
#                 energy-and-gradient calls (the same energies, 16, 256 and 1,024 strings, string and
#                 climbing phase), eager and compiled.
#   map_scale     map_scale.py --ranks 1: whole maps (Mueller-Brown; a digits model, 32
#                 chains) and the ladder's levels together against one after another.
#   map           `landscape map` of a 32x32 image model (CKPT, else `landscape train
#                 --preset digits32-nonconvergent` first) with MAP_ARGS [the demo's image-
#                 space settings]; minima, basins per level and seconds per stage.
#   map_compiled  the same map with --compile.
#   map_again     the same map as `map` once more, compared with it (is a GPU map reproducible?).
#   map_defaults  the same model mapped at the library's defaults (256 chains, ...).
#   map_defaults_compiled  the defaults map with --compile: does compiling pay on a long map
#                 (should --compile be the default on a GPU)?
#   train_convergent  `landscape train --preset digits32-convergent` in full (CONV_ARGS: more
#                 options, e.g. "--set sampler.steps=500"), then `landscape check` of it
#                 (convergent or not; its pictures in RESULTS).
#
# PYTHON [python3] must hold a CUDA build of torch and the package's other dependencies
# (h5py, networkx, click, tqdm, scikit-learn, scipy, matplotlib): the package is installed
# into it from this checkout without them (no network needed). AD_ARGS go to ad_step.py
# (e.g. --repeats 3), WINDOW_ARGS to ad_window.py, STRING_ARGS to string_step.py. Each part runs under a time limit of
# its own (seconds: TESTS_S, AD_S, WINDOW_S, STRING_S, SCALE_S, TRAIN_S, MAP_S, MAPC_S, MAPD_S,
# TRAINC_S, CHECK_S) and leaves its log in RESULTS
# [gpu-results] with a line in RESULTS/summary.txt; a part cut short leaves what it
# printed. Maps are written to WORK [a new temporary folder].
# DEVICE=cpu QUICK=1 runs every part, shortened, on the CPU: a check of the script itself.
set -u
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
OUT=${1:-gpu-results}
AD_S=${AD_S:-240} WINDOW_S=${WINDOW_S:-240} STRING_S=${STRING_S:-180} SCALE_S=${SCALE_S:-240} TRAIN_S=${TRAIN_S:-240} MAP_S=${MAP_S:-480} MAPC_S=${MAPC_S:-480}
MAPD_S=${MAPD_S:-480} TRAINC_S=${TRAINC_S:-480} CHECK_S=${CHECK_S:-240}
PARTS=${PARTS:-tests_cuda ad_step string_step map_scale map map_compiled}
TESTS_S=${TESTS_S:-240}
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
    ad=(--repeats 1 --steps 40 --batches 16) window=(--repeats 1 --windows 5 --batches 16) strings=(--repeats 1 --iterations 5 --strings 4) train=(--steps 5) check=(--chains 8 --multiples 1,3)
    map=(--chains 8 --rounds 1 --max-steps 100 --patience 20 --attempts 1 --neighbours 2 --ladder 1 --ladder-extend 0
         --no-refine)
    defaults=("${map[@]}")
else
    train=() defaults=() check=()
    read -r -a ad <<<"${AD_ARGS:-}"
    read -r -a window <<<"${WINDOW_ARGS:-}"
    read -r -a strings <<<"${STRING_ARGS:-}"
    read -r -a map <<<"${MAP_ARGS:---chains 32 --max-steps 1000 --patience 100 --attempts 2 --neighbours 5}"
fi
work=${WORK:-$(mktemp -d)}  # the models and their maps (their run folders would crowd RESULTS)
mkdir -p "$work"
ckpt=${CKPT:-$work/d32n.pt}

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
same() {  # same A B: how far two maps' minima and basins are apart
    "$PYTHON" - "$1" "$2" <<'EOF'
import sys
import numpy as np
from landscape.io.mapfile import read_map
a, b = read_map(sys.argv[1]), read_map(sys.argv[2])
if a.minima_x.shape != b.minima_x.shape:
    print(f"different minima counts, {len(a.minima_energy)} and {len(b.minima_energy)}")
else:
    print(f"minima apart by at most {np.abs(a.minima_x - b.minima_x).max():.3g} (energies "
          f"{np.abs(a.minima_energy - b.minima_energy).max():.3g}); basins per level "
          f"{[p.n_basins for p in a.levels]} and {[p.n_basins for p in b.levels]}")
EOF
}
model() {  # the 32x32 model to map: CKPT, or digits32-nonconvergent trained here first
    [ -f "$ckpt" ] || part train_32x32 "$TRAIN_S" "$LANDSCAPE" train --preset digits32-nonconvergent --out "$ckpt" \
        --device "$DEVICE" --quiet "${train[@]}"
    [ -f "$ckpt" ]
}
map_part() {  # map_part NAME LIMIT ARGS...: map the 32x32 model into WORK/NAME.h5 and describe it
    local name=$1 limit=$2
    shift 2
    model || return
    part "$name" "$limit" "$LANDSCAPE" map "$ckpt" --out "$work/$name.h5" --device "$DEVICE" "$@"
    [ -f "$work/$name.h5" ] && summary "$name: $(describe "$work/$name.h5")"
}

for p in $PARTS; do
    case $p in
        tests_cuda) part tests_cuda "$TESTS_S" "$PYTHON" -m pytest -q -p no:cacheprovider tests/test_cuda.py ;;
        ad_step) part ad_step "$AD_S" "$PYTHON" benchmarks/ad_step.py --device "$DEVICE" --compile \
                     --energies digits,mueller-brown,vanilla32 "${ad[@]}" ;;
        ad_window) part ad_window "$WINDOW_S" "$PYTHON" benchmarks/ad_window.py --device "$DEVICE" \
                       --energies digits,mueller-brown,vanilla32 "${window[@]}" ;;
        string_step) part string_step "$STRING_S" "$PYTHON" benchmarks/string_step.py --device "$DEVICE" --compile \
                         --energies digits,mueller-brown,vanilla32 --strings 16,256,1024 "${strings[@]}" ;;
        map_scale) part map_scale "$SCALE_S" "$PYTHON" benchmarks/map_scale.py --device "$DEVICE" --ranks 1 ;;
        map) map_part map_32x32 "$MAP_S" "${map[@]}" ;;
        map_compiled) map_part map_32x32_compiled "$MAPC_S" --compile "${map[@]}" ;;
        map_again) map_part map_32x32_again "$MAP_S" "${map[@]}" && [ -f "$work/map_32x32.h5" ] \
                       && summary "map_again against map: $(same "$work/map_32x32.h5" "$work/map_32x32_again.h5")" ;;
        map_defaults) map_part map_32x32_defaults "$MAPD_S" "${defaults[@]}" ;;
        map_defaults_compiled) map_part map_32x32_defaults_compiled "$MAPD_S" --compile "${defaults[@]}" ;;
        train_convergent) part train_32x32_convergent "$TRAINC_S" "$LANDSCAPE" train --preset digits32-convergent \
                              --out "$work/d32c.pt" --device "$DEVICE" --quiet "${train[@]}" ${CONV_ARGS:-}
                          [ -f "$work/d32c.pt" ] && part check_32x32_convergent "$CHECK_S" "$LANDSCAPE" check \
                              "$work/d32c.pt" --device "$DEVICE" --quiet --force --out "$OUT/check_convergent.png" "${check[@]}" ;;
        *) summary "unknown part $p (tests_cuda, ad_step, ad_window, string_step, map_scale, map, map_compiled, map_again, map_defaults, map_defaults_compiled, train_convergent)" ;;
    esac
done
summary "done: logs in $OUT"
