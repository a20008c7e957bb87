#!/usr/bin/env bash
# The GPU runs whose results are committed under results/, in stages that each
# fit one device-tool call (10 minutes).  Run from the repository root on the
# GPU machine, with .whl and .data carried (tools/gpu/fetch_wheels.sh):
#
#   bash tools/gpu/run.sh STAGE [STAGE ...]
#
# Stages: env, train-fc, train-poisson, train-synthetic, train-dsrn, sweep-dsrn,
# sweep-fc, bench-layer, asv.  Each stage writes its result files under
# results/gpu/<precision>/<stage>/ and packs them into $OUT/<stage>.tgz (the
# device tool brings back at most 8 files), then prints a short table.
# PRECISION=bf16 (or tf32) runs a stage at that precision (default fp32).
# SMOKE=1 runs every stage on the CPU at a tiny size, to check this script
# without a GPU.
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

if [ "${SMOKE:-0}" = 1 ]; then
  DEVICE=cpu
  FC="--T 4 --batch-size 16 --limit-train 64 --limit-test 32"
  DSRN="--width 0.0625 --batch-size 8 --limit-train 32 --limit-test 16"
  SYN="--steps 20 --T 20"
  TS=1,2
  LAYER="--T 20 --batch-size 4 --neurons 64,256"
else
  DEVICE=cuda
  FC=""
  DSRN=""
  SYN=""
  TS=1,2,4,8,16
  LAYER="--neurons 512,4096,16384"
fi
PRECISION=${PRECISION:-fp32}
RUN="--device $DEVICE --precision $PRECISION --no-progress --no-download"
COMMON="$RUN --dataset fashion-mnist"
RES=results/gpu/$PRECISION

pack() {  # pack results/gpu/<stage> into $OUT/<stage>.tgz
  tar -czf "$OUT/$1.tgz" -C "$RES" "$1" && ls -la "$OUT/$1.tgz"
}

for stage in "$@"; do
  echo "=== $stage"
  case $stage in
    env)
      nvidia-smi || true
      python3 -c "import torch, jax; print('torch', torch.__version__, torch.cuda.is_available(), 'jax', jax.__version__, jax.devices())"
      python3 -m tasks.run --list
      ;;
    train-fc)
      python3 -m tasks.run --task fc_mnist --backend all $COMMON $FC --out $RES/$stage; pack $stage ;;
    train-poisson)
      python3 -m tasks.run --task fc_mnist_poisson --backend all --epochs 1 $COMMON $FC --out $RES/$stage; pack $stage ;;
    train-synthetic)
      python3 -m tasks.run --task synthetic --backend all --device $DEVICE --precision $PRECISION --no-progress $SYN \
        --out $RES/$stage; pack $stage ;;
    train-dsrn)
      python3 -m tasks.run --task dsrn_tdbn --backend all --epochs 1 $COMMON $DSRN --out $RES/$stage; pack $stage ;;
    sweep-dsrn)
      python3 -m tasks.sweep --task dsrn_tdbn --backend all --T $TS --measure memory,throughput $COMMON $DSRN \
        --out $RES/$stage; pack $stage ;;
    sweep-fc)
      for task in fc_mnist fc_mnist_poisson; do
        python3 -m tasks.sweep --task $task --backend all --measure memory,throughput,epoch --epoch-steps 50 \
          $COMMON $FC --out $RES/$stage
      done
      pack $stage ;;
    bench-layer)
      # the field's single-layer benchmark: Linear(N, N) + LIF, batch 16, T = 500
      python3 -m tasks.sweep --task lif_layer --backend all --measure memory,throughput $RUN $LAYER \
        --out $RES/$stage; pack $stage ;;
    asv)
      [ "${SMOKE:-0}" = 1 ] && export SPIKEBENCH_ASV_SIZE=small
      python3 -m asv machine --yes >/dev/null
      python3 -m asv run --python=same --set-commit-hash "$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
        ${ASV_ARGS:-}
      mkdir -p $RES/asv && cp -r .asv/results $RES/asv/ && pack asv ;;
    *)
      echo "unknown stage $stage" >&2; exit 2 ;;
  esac
done
