#!/usr/bin/env bash
# Shows that the link credit's unit tests (LinkCredit.* in
# measured_plans_test.cc, ProgressTracker.CreditRealized* in
# progress_model_test.cc) can fail: breaks the credit's pricing and its
# check in src/tuner/cost_model.cc one at a time, rebuilds the tuner tests
# and expects one of them to fail; restores the file after each. Not part
# of CI (a rebuild per mutation).
#   tests/tuner/link_credit_mutations.sh [BUILD_DIR]   (default build)
# ONLY=TEXT runs only the mutations whose name contains TEXT.
set -uo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}

# name | sed expression (each must change the file)
mutations=(
  "credit not capped by the burst|s|std::min(burstBytes, bytesPerSecond \* idleSeconds)|bytesPerSecond * idleSeconds + 0.0 * burstBytes|"
  "check: share measured from the credited price|s|return std::clamp((uncreditedSeconds - measuredSeconds) / credit, 0.0, 1.0);|return std::clamp((measuredSeconds - creditedSeconds) / credit, 0.0, 1.0);|"
  "check: not clamped to what was priced|s|return std::clamp((uncreditedSeconds - measuredSeconds) / credit, 0.0, 1.0);|return (uncreditedSeconds - measuredSeconds) / credit;|"
  "check: a small credit counts as evidence|s|!(credit >= kLinkCreditCheckShare \* uncreditedSeconds)|!(credit > 0)|"
)
# shellcheck source=tests/tuner/run_mutations.sh
source tests/tuner/run_mutations.sh
run_mutations src/tuner/cost_model.cc "$build" 'LinkCredit.*'
