#!/usr/bin/env bash
# Rehearse the GPU run on this machine's CPU, from the carried files alone:
#
#   bash tools/gpu/fetch_wheels.sh      # first: .whl and .data
#   bash tools/gpu/rehearse.sh          # then: SMOKE=1 tools/gpu/run.sh in Python 3.12
#
# 1. A stand-in for the GPU image: a Python 3.12 venv holding the image's
#    packages that the frameworks stand on (python -m tools.gpu.wheels --image),
#    at the image's versions where they were read (tools/gpu/image-packages.txt:
#    torch 2.11.0 with triton 3.6.0, the very build the image has, which runs on
#    the CPU here; jax and jaxlib 0.11.2, whose PyPI jaxlib is the CPU build),
#    from PyPI.  None of the carried packages is in it (checked).  Kept in
#    $REHEARSAL_VENV (~/.cache/spikebench/gpu-image-py312, ~6 GB) while its
#    list is unchanged; REBUILD=1 makes it anew.
# 2. SMOKE=1 bash tools/gpu/run.sh with that Python 3.12 first on the PATH, no
#    pip configuration (as there: no index), a fresh $SITE for the carried
#    wheels, the data unpacked from .data, results in a fresh folder.
# 3. python -m tools.gpu.check: every registered backend finished every smoke
#    point (timing, parity, training), each image task read the carried data.
# Exit status 0 only then.  Prints the wall time of each step.
set -euo pipefail
cd "$(dirname "$0")/../.."
start=$SECONDS
project_python=${PYTHON:-.venv/bin/python}
venv=${REHEARSAL_VENV:-$HOME/.cache/spikebench/gpu-image-py312}

die() { echo "rehearse: error: $*" >&2; exit 1; }
ls .whl/*.whl >/dev/null 2>&1 || die "no .whl/*.whl: run bash tools/gpu/fetch_wheels.sh first"
[ -f .data/fashion-mnist/SHA256SUMS ] || die "no .data/fashion-mnist: run bash tools/gpu/fetch_wheels.sh first"

py312=""
for c in "${PY312:-}" python3.12 "$(pyenv root 2>/dev/null)"/versions/3.12*/bin/python3.12; do
  if [ -n "$c" ] && "$c" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then py312=$c; break; fi
done
[ -n "$py312" ] || die "no Python 3.12 found (set PY312, or pyenv install 3.12)"

echo "== the image's stand-in: $venv"
needs=$("$project_python" -m tools.gpu.wheels --image) || die "$project_python -m tools.gpu.wheels --image failed"
stamp=$(printf '%s\n' "$py312" "$needs" | sha256sum | cut -c1-16)
if [ "${REBUILD:-0}" = 1 ] || [ "$(cat "$venv/.stamp" 2>/dev/null)" != "$stamp" ]; then
  t=$SECONDS
  rm -rf "$venv"
  "$py312" -m venv "$venv"
  # shellcheck disable=SC2086  # one requirement per word
  # (this machine's pip configuration names local indexes that hold nothing for 3.12: their warnings dropped)
  "$venv/bin/python" -m pip install -q --disable-pip-version-check $needs 2> >(grep -v "^WARNING: Location" >&2) \
    || die "the image's packages did not install into $venv from PyPI"
  echo "$stamp" >"$venv/.stamp"
  echo "built in $((SECONDS - t)) s"
else
  echo "kept (its list is unchanged; REBUILD=1 makes it anew)"
fi
# the stand-in must not hold what travels: a wheel missing from .whl would go unnoticed
carried=$(for w in .whl/*.whl; do basename "$w" | cut -d- -f1; done | tr '_.' '--' | tr 'A-Z' 'a-z' | sort -u)
present=$("$venv/bin/python" -m pip list --format=freeze --disable-pip-version-check 2>/dev/null \
  | cut -d= -f1 | tr '_.' '--' | tr 'A-Z' 'a-z' | sort -u)
both=$(comm -12 <(echo "$carried") <(echo "$present") | tr '\n' ' ')
[ -z "$both" ] || die "the stand-in for the image already holds carried packages: $both"
"$venv/bin/python" -c "import sys, torch, jax; print('python', sys.version.split()[0], '| torch', torch.__version__, '| jax', jax.__version__)"

echo "== SMOKE=1 bash tools/gpu/run.sh (Python 3.12, the carried wheels and data alone)"
work=$(mktemp -d /tmp/spikebench-rehearsal.XXXXXX)
t=$SECONDS
rc=0
env -u PYTHONPATH -u VIRTUAL_ENV PATH="$venv/bin:$PATH" PIP_CONFIG_FILE=/dev/null PYTHONNOUSERSITE=1 \
  SMOKE=1 SITE="$work/site" DATA="$work/data" RESULTS="$work/smoke" OUT="$work/out" \
  bash tools/gpu/run.sh || rc=$?
echo "run.sh: exit status $rc, $((SECONDS - t)) s"

echo "== every backend's smoke points"
env -u VIRTUAL_ENV PYTHONPATH="$work/site:$PWD" PYTHONNOUSERSITE=1 \
  "$venv/bin/python" -m tools.gpu.check smoke "$work/smoke" --data "$work/data" || rc=1
[ -f "$work/out/smoke.tgz" ] || { echo "rehearse: error: run.sh left no $work/out/smoke.tgz" >&2; rc=1; }
echo "rehearsal: $([ $rc = 0 ] && echo passed || echo FAILED) in $((SECONDS - start)) s (results in $work)"
exit $rc
