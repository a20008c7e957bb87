#!/usr/bin/env bash
# The GPU edition of the comparison: the suite's `gpu` profile (tasks/profiles.toml),
# run from the repository root on the GPU machine, with .whl and .data carried
# (tools/gpu/fetch_wheels.sh):
#
#   bash tools/gpu/run.sh [PART ...]   # parts: env timing parity train (default: all four, in this order)
#
# The parts run in order of value: timing (step time and memory of every
# backend on every task, memory versus T), then parity, then the training
# runs; what each part runs is the profile's, not this script's.  This only
# installs the carried wheels (into $SITE, /tmp/site), unpacks and checks the
# carried data (into $DATA, /tmp/spikebench-data), and runs
# `python -m tasks.suite --profile gpu --part PART` for each part.  Results land
# in $RESULTS (results/gpu/) and are packed into $OUT/gpu.tgz every minute and
# at the end, so what finished comes back even if the time runs out.
# SMOKE=1 runs the smoke profile on the CPU instead, to rehearse the script
# (tools/gpu/rehearse.sh does, in a Python 3.12 environment).
# Exit status: 1 when a step failed (the later parts still run), else 0.
set -uo pipefail
cd "$(dirname "$0")/../.."

SITE=${SITE:-/tmp/site}
DATA=${DATA:-/tmp/spikebench-data}
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl \
    || { echo "run.sh: the carried wheels did not install into $SITE" >&2; exit 1; }
  export PYTHONPATH=$SITE:$PWD
else
  echo "run.sh: no .whl/*.whl here: running with the frameworks already installed" >&2
  export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
if [ -d .data/fashion-mnist ]; then
  python3 -m tools.gpu.data unpack .data/fashion-mnist "$DATA/fashion-mnist" || exit 1
  export SPIKEBENCH_DATA=$DATA
fi
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/spikebench-out}
mkdir -p "$OUT"
PROFILE=gpu
[ "${SMOKE:-0}" = 1 ] && PROFILE=smoke
RES=${RESULTS:-results/$PROFILE}

pack() { [ -d "$RES" ] && tar -czf "$OUT/$PROFILE.tgz.part" -C "$(dirname "$RES")" "$(basename "$RES")" \
  && mv "$OUT/$PROFILE.tgz.part" "$OUT/$PROFILE.tgz"; }
( while sleep 60; do pack; done ) &
packer=$!
trap 'kill $packer 2>/dev/null; pack' EXIT

parts=("$@")
[ ${#parts[@]} = 0 ] && parts=(env timing parity train)
rc=0
for part in "${parts[@]}"; do
  echo "=== $part"
  case $part in
    env)
      nvidia-smi || true
      python3 -c "import sys, torch, jax; print('python', sys.version.split()[0], 'torch', torch.__version__, torch.cuda.is_available(), 'jax', jax.__version__, jax.devices())" || rc=1
      python3 -m tasks.run --list || rc=1 ;;
    timing|parity|train)
      python3 -m tasks.suite --profile $PROFILE --part "$part" --out "$RES" --no-progress --no-report || rc=1 ;;
    *)
      echo "run.sh: unknown part $part (env, timing, parity, train)" >&2; exit 2 ;;
  esac
done
exit $rc
