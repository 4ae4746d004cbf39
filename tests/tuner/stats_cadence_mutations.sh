#!/usr/bin/env bash
# Shows that the statistics cadence's unit tests (stats_cadence_test.cc) can
# fail: breaks one piece of src/tuner/stats_cadence.cc at a time (each a
# plausible mistake), rebuilds the tuner tests and expects at least one
# StatsCadence test to fail; restores the file after each. Not part of CI
# (a rebuild per mutation).
#   tests/tuner/stats_cadence_mutations.sh [BUILD_DIR]   (default build)
set -uo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
src=src/tuner/stats_cadence.cc
backup=$(mktemp)
cp "$src" "$backup"
trap 'cp "$backup" "$src"; rm -f "$backup"' EXIT

# name | sed expression (each must change the file)
mutations=(
  "hysteresis left out of the gap|s|std::log((1.0 + hysteresis) \* p.score / c.score)|std::log(p.score / c.score)|"
  "movement not per call|s|return std::isfinite(d) ? d / calls : kInf;|return std::isfinite(d) ? d + 0.0 * calls : kInf;|"
  "only the last rate, not the faster of the last two|s|q.haveRate ? std::max(g.rate, q.rate) : g.rate;|g.rate;|"
  "shared time counted where it cannot close the gap|s|const bool gainsOnly = g.worst > 0 \&\& q.worst > 0;|const bool gainsOnly = false;|"
  "shared time ignored where it could close the gap|s|const bool gainsOnly = g.worst > 0 \&\& q.worst > 0;|const bool gainsOnly = true;|"
  "margin ignored by the interval|s|std::max(static_cast<double>(kStatsEveryUnproven), margin);|static_cast<double>(kStatsEveryUnproven) + 0.0 * margin;|"
  "margin lifts the share rule too|s|std::min(share, held)|held + 0.0 * share|"
  "a new plan keeps the old gaps|s|usable \&\& !plan.changed \&\& chosen == plan_;|usable;|"
)
caught=0
for m in "${mutations[@]}"; do
  name=${m%%|*}
  expr=${m#*|}
  cp "$backup" "$src"
  sed -i "$expr" "$src"
  if cmp -s "$backup" "$src"; then echo "MUTATION DID NOT APPLY: $name"; exit 2; fi
  if ! cmake --build "$build" --target sqz_tuner_tests > /tmp/stats_cadence_mutation_build.log 2>&1; then
    echo "BUILD FAILED: $name (see /tmp/stats_cadence_mutation_build.log)"; exit 2
  fi
  failed=$("$build/tests/tuner/sqz_tuner_tests" --gtest_filter='StatsCadence.*' 2>&1 |
           sed -n 's/^\[  FAILED  \] \([A-Za-z.]*\) (.*/\1/p' | tr '\n' ' ')
  if [ -n "$failed" ]; then
    echo "caught: $name -> $failed"
    caught=$((caught + 1))
  else
    echo "NOT CAUGHT: $name"
  fi
done
cp "$backup" "$src"
cmake --build "$build" --target sqz_tuner_tests > /dev/null 2>&1
echo "$caught of ${#mutations[@]} mutations caught"
[ "$caught" -eq "${#mutations[@]}" ]
