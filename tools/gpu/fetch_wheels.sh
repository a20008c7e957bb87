#!/usr/bin/env bash
# Prepare what a GPU machine without network needs, from a machine with PyPI:
#   .whl/   wheels for Python 3.12 of the frameworks and tools the GPU image lacks:
#           the list comes from the backend registry and the installed versions
#           (python -m tools.gpu.wheels), less the image's own packages;
#   .data/  Fashion-MNIST (from Debian's dataset-fashion-mnist, or --data-dir).
# Both folders are git-ignored; name them in the device tool's `carry`.
set -euo pipefail
cd "$(dirname "$0")/../.."
# the project's environment (everything installed: pip install -e ".[all]")
python=${PYTHON:-.venv/bin/python}
wheels=$("$python" -m tools.gpu.wheels)
rm -rf .whl && mkdir -p .whl
# shellcheck disable=SC2086  # one requirement per word
"$python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any -d .whl $wheels
ls .whl
src=${1:-/usr/share/datasets/fashion-mnist}
mkdir -p .data/fashion-mnist
cp "$src"/*-ubyte* .data/fashion-mnist/
du -sh .whl .data
