#!/usr/bin/env bash
# Mutation testing of the referee (docs/testing.md): mutmut changes one operator,
# constant or call at a time in the files below and runs the fast tests that cover
# it; a mutant no test fails ("survived") is a change the tests cannot see.
#
#   bash tools/mutants.sh [MUTANT_GLOB ...]    # default: $JUDGES below
#
# A glob names mutmut's mutants, module and function: "tasks.parity.x_exceeds__mutmut_*".
# The default is the functions that judge (parity's figures, limits and table; the report
# cells' tooltips, flags and scopes; metrics; the host memory measure), whose tests run
# in seconds; parity's case making and command line, and tables.py's _fill_cells and
# build_table (whose tests build whole reports) are left out for time.
# Runs in a scratch copy of the working tree (mutmut writes mutants/ and a config
# there), so this checkout is left alone.  About 20-30 minutes on two idle cores.
set -euo pipefail
cd "$(dirname "$0")/.."
JUDGES=("tasks.parity.x__worst__*" "tasks.parity.x_exceeds__*" "tasks.parity.x__rel__*" "tasks.parity.x_failure_text__*"
        "tasks.parity.x_format_table__*" "tasks.parity.x_at_threshold__*"
        "reports.tables.x__timing_detail__*" "reports.tables.x__missing_title__*" "reports.tables.x_peak_scope__*"
        "reports.tables.x__aggregate__*" "reports.tables.x__how__*" "reports.tables.x_accuracy_flag__*"
        "reports.tables.x__failure__*" "tasks.metrics.*"
        "tasks.hostmem.x__status_kib__*" "tasks.hostmem.x_release_freed_memory__*" "tasks.hostmem.x__reset_peak__*"
        "tasks.hostmem.x_step_memory__*")
globs=("$@")
[ ${#globs[@]} -gt 0 ] || globs=("${JUDGES[@]}")
files=(tasks/parity.py reports/tables.py tasks/metrics.py tasks/hostmem.py)
python -c "import mutmut" 2>/dev/null || { echo "tools/mutants.sh: pip install mutmut (3.x)" >&2; exit 2; }
scratch=$(mktemp -d)/spikebench
mkdir -p "$scratch"
git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$scratch"
{
  echo "[mutmut]"
  echo "source_paths="; echo "    tasks/"; echo "    reports/"
  echo "only_mutate="; for f in "${files[@]}"; do echo "    $f"; done
  echo "also_copy="; echo "    backends/"; echo "    results/"; echo "    docs/"; echo "    README.md"
  # one process: mutmut reads its statistics from the pytest it runs (pyproject's addopts start xdist workers)
  echo "pytest_add_cli_args="; echo "    -n"; echo "    0"
  # the tests of the referee that run in seconds (the backends' own parity tests take minutes)
  echo "pytest_add_cli_args_test_selection="
  for t in tests/test_parity.py tests/test_hostmem.py tests/test_metrics.py tests/test_result.py tests/test_weights.py \
           tests/test_build.py tests/test_tables.py tests/test_figures.py tests/test_committed_report.py; do [ ! -f "$t" ] || echo "    $t"; done
} > "$scratch/setup.cfg"
echo "scratch copy: $scratch"
cd "$scratch"
python -m mutmut run --max-children "${MUTMUT_CHILDREN:-2}" "${globs[@]}" || true
python -m mutmut results --all true | grep -v ": not checked$" > results.txt || true
grep -v ": killed$" results.txt || true
# the score: killed of all mutants (survived, no tests, timeout and suspicious count against it)
awk -F': ' 'NF == 2 {n[$2]++; all++} END {for (s in n) printf "%s %d\n", s, n[s];
  printf "mutation score: %d killed of %d (%.1f %%)\n", n["killed"], all, 100 * n["killed"] / (all ? all : 1)}' results.txt
