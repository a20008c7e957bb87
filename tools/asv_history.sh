#!/usr/bin/env bash
# asv performance history of the cpu profile's step timings, one checkout per commit:
#
#   bash tools/asv_history.sh COMMIT [COMMIT ...]    # e.g. $(git rev-list -3 HEAD)
#
# asv's "existing" environment runs the benchmarks of the current tree against
# whatever spikebench is importable; to measure each commit's own code, every
# commit is checked out into a worktree of its own and put first on the
# benchmark processes' path (ASV_PYTHONPATH), and asv records the results under
# that commit's hash (.asv/results, committed). Then `asv publish` writes the
# pages into reports/asv/. Take it on a quiet machine: these are timings.
# ASV_BENCH selects the benchmarks (a regex over "name(param, ...)"); the default
# is the training step of each task at its spec's T and the single layer at
# N = 512, every backend: the cpu profile's headline timings, a few minutes a commit.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: bash tools/asv_history.sh COMMIT [COMMIT ...]" >&2; exit 2; }
bench=${ASV_BENCH:-"time_train_step\\(.*, '(synthetic', 200|fc_mnist', 25|fc_mnist_poisson', 50|dsrn_tdbn', 2)\\)|time_forward_backward\\(.*, 512\\)"}
export SPIKEBENCH_ASV_PROFILE=${SPIKEBENCH_ASV_PROFILE:-cpu}
python -m asv machine --yes >/dev/null
for commit in "$@"; do
  hash=$(git rev-parse "$commit")
  tree=$(mktemp -d)/spikebench-${hash:0:10}
  git worktree add --detach "$tree" "$hash" >/dev/null
  echo "== $hash"
  # the commit's own benchmarks and code; its results then join this checkout's .asv/results
  (cd "$tree" && python -m asv machine --yes >/dev/null && ASV_PYTHONPATH="$tree" python -m asv run --python=same \
      --set-commit-hash "$hash" --bench "$bench" --show-stderr) || echo "asv failed for $hash" >&2
  mkdir -p .asv/results && cp -r "$tree/.asv/results/." .asv/results/
  git worktree remove --force "$tree"
done
python -m asv publish
