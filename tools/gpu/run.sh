#!/usr/bin/env bash
# The GPU edition of the comparison: the suite's `gpu` profile (tasks/profiles.toml),
# run from the repository root on the GPU machine, with .whl and .data carried
# (tools/gpu/fetch_wheels.sh):
#
#   bash tools/gpu/run.sh [PART ...]      # parts: env timing parity train (default: env timing train)
#
# The list of what runs is the profile's, not this script's: this only installs
# the carried wheels, points the data search at .data, and runs
# `python -m tasks.suite --profile gpu --part PART` for each part in order of
# value.  Results land in results/gpu/ and are packed into $OUT/gpu.tgz every
# minute and at the end, so what finished comes back even if the time runs out.
# SMOKE=1 runs the smoke profile on the CPU instead, to rehearse the script.
set -uo pipefail
cd "$(dirname "$0")/../.."

if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
[ -d .data ] && export SPIKEBENCH_DATA=$PWD/.data
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/spikebench-out}
mkdir -p "$OUT"
PROFILE=gpu
[ "${SMOKE:-0}" = 1 ] && PROFILE=smoke
RES=results/$PROFILE

pack() { [ -d "$RES" ] && tar -czf "$OUT/$PROFILE.tgz.part" -C results "$PROFILE" && mv "$OUT/$PROFILE.tgz.part" "$OUT/$PROFILE.tgz"; }
( while sleep 60; do pack; done ) &
packer=$!
trap 'kill $packer 2>/dev/null; pack' EXIT

parts=("$@")
[ ${#parts[@]} = 0 ] && parts=(env timing train)
for part in "${parts[@]}"; do
  echo "=== $part"
  case $part in
    env)
      nvidia-smi || true
      python3 -c "import torch, jax; print('torch', torch.__version__, torch.cuda.is_available(), 'jax', jax.__version__, jax.devices())"
      python3 -m tasks.run --list ;;
    timing|parity|train)
      python3 -m tasks.suite --profile $PROFILE --part $part --out "$RES" --no-progress --no-report ;;
    *)
      echo "unknown part $part (env, timing, parity, train)" >&2; exit 2 ;;
  esac
done
