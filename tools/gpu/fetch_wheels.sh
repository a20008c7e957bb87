#!/usr/bin/env bash
# Prepare what a GPU machine without network needs, from a machine with PyPI:
#   .whl/   pure-Python wheels for Python 3.12 of the frameworks and tools the GPU
#           image lacks (its image has torch, jax, triton, pandas, ...);
#   .data/  Fashion-MNIST (from Debian's dataset-fashion-mnist, or --data-dir).
# Both folders are git-ignored; name them in the device tool's `carry`.
set -euo pipefail
cd "$(dirname "$0")/../.."
python=${PYTHON:-python3}
rm -rf .whl && mkdir -p .whl
"$python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform any -d .whl \
  snntorch==1.0.0 spikingjelly==2.0.0 loguru scienceplots \
  brainstate==0.5.4 brainpy==2.8.2 brainpy_state==0.1.0 braintools==0.3.0 \
  brainunit==0.5.2 saiunit==0.5.2 brainevent==0.2.1 array_api_compat \
  asv asv_runner json5 pympler virtualenv distlib platformdirs pooch tensorboardX
ls .whl
src=${1:-/usr/share/datasets/fashion-mnist}
mkdir -p .data/fashion-mnist
cp "$src"/*-ubyte* .data/fashion-mnist/
du -sh .whl .data
