#!/usr/bin/env bash
# Prepare what a GPU machine without network needs, from a machine with PyPI:
#   .whl/   wheels for Python 3.12 of the frameworks the GPU image lacks
#           (python -m tools.gpu.wheels: the registry's extras at the versions
#           installed here, less the image's packages and those the run does not
#           need); a pin published as an sdist only is built into a wheel here;
#   .data/  Fashion-MNIST, its four idx files in xz with their SHA-256
#           (python -m tools.gpu.data; from Debian's dataset-fashion-mnist or $1).
# Then checks that one device call carries them with the working tree, with room
# to spare.  Any pin it cannot provide stops it with a one-line error.
# Both folders are git-ignored; name them in the device tool's `carry`.
#
#   bash tools/gpu/fetch_wheels.sh [FASHION_MNIST_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
# the project's environment (everything installed: pip install -e ".[all]"):
# the pins are its installed versions
python=${PYTHON:-.venv/bin/python}
if ! "$python" -c 'import backends, packaging' 2>/dev/null; then
  echo "fetch_wheels: $python cannot import the project: install it first (.ci/run's python environment step)" >&2
  exit 1
fi
echo "== wheels (.whl)"
"$python" -m tools.gpu.wheels fetch .whl
echo "== data (.data)"
src=${1:-/usr/share/datasets/fashion-mnist}
"$python" -m tools.gpu.data pack "$src" .data/fashion-mnist
echo "== one device call"
"$python" -m tools.gpu.wheels budget .whl .data
echo "carry: [\".whl\", \".data\"]; command: bash tools/gpu/run.sh"
