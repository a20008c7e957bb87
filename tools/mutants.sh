#!/usr/bin/env bash
# Mutation testing of the referee (docs/testing.md): mutmut changes one operator,
# constant or call at a time in the files below and runs the fast tests that cover
# it; a mutant no test fails ("survived") is a change the tests cannot see.
#
#   bash tools/mutants.sh [FILE ...]     # default: the four referee files
#
# Runs in a scratch copy of the working tree (mutmut writes mutants/ and a config
# there), so this checkout is left alone.  About 20-40 minutes on two cores.
set -euo pipefail
cd "$(dirname "$0")/.."
files=("$@")
[ ${#files[@]} -gt 0 ] || files=(tasks/parity.py reports/tables.py tasks/metrics.py tasks/hostmem.py)
for f in "${files[@]}"; do [ -f "$f" ] || { echo "tools/mutants.sh: no file $f" >&2; exit 2; }; done
python -c "import mutmut" 2>/dev/null || { echo "tools/mutants.sh: pip install mutmut (3.x)" >&2; exit 2; }
scratch=$(mktemp -d)/spikebench
mkdir -p "$scratch"
git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$scratch"
{
  echo "[mutmut]"
  echo "source_paths="; echo "    tasks/"; echo "    reports/"
  echo "only_mutate="; for f in "${files[@]}"; do echo "    $f"; done
  echo "also_copy="; echo "    backends/"; echo "    results/"; echo "    docs/"; echo "    README.md"
  # the tests of the referee that run in seconds (the backends' own parity tests take minutes)
  echo "pytest_add_cli_args_test_selection="
  for t in tests/test_parity.py tests/test_hostmem.py tests/test_metrics_and_results.py tests/test_report.py \
           tests/test_committed_report.py; do echo "    $t"; done
} > "$scratch/setup.cfg"
echo "scratch copy: $scratch"
cd "$scratch"
python -m mutmut run --max-children "${MUTMUT_CHILDREN:-2}" || true
python -m mutmut results --all true > results.txt || true
grep -v ": killed$" results.txt || true
# the score: killed of all mutants (survived, no tests, timeout and suspicious count against it)
awk -F': ' 'NF == 2 {n[$2]++; all++} END {for (s in n) printf "%s %d\n", s, n[s];
  printf "mutation score: %d killed of %d (%.1f %%)\n", n["killed"], all, 100 * n["killed"] / (all ? all : 1)}' results.txt
