#!/usr/bin/env bash
# Shows that the statistics cadence's unit tests (stats_cadence_test.cc) can
# fail: breaks one piece of src/tuner/stats_cadence.cc at a time (each a
# plausible mistake), rebuilds the tuner tests and expects at least one
# StatsCadence test to fail; restores the file after each. Not part of CI
# (a rebuild per mutation).
#   tests/tuner/stats_cadence_mutations.sh [BUILD_DIR]   (default build)
# ONLY=TEXT runs only the mutations whose name contains TEXT.
set -uo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}

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
# shellcheck source=tests/tuner/run_mutations.sh
source tests/tuner/run_mutations.sh
run_mutations src/tuner/stats_cadence.cc "$build" 'StatsCadence.*'
