#!/usr/bin/env bash
# Shows that the tests of sign:rot's statistics (sign_rotation_test.cc) can
# fail: breaks signRotationBlockErrors (kernels/sign_rotation_math.h) and
# the statistics pass's use of it (kernels/cpu_codec.cc) one plausible
# mistake at a time, rebuilds the codec tests and expects a SignRotation
# test to fail; restores the files. Not part of CI (a rebuild per mutation).
#   tests/codec/sign_rotation_mutations.sh [BUILD_DIR]   (default build)
# ONLY=TEXT runs only the mutations whose name contains TEXT.
set -uo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
# shellcheck source=tests/tuner/run_mutations.sh
source tests/tuner/run_mutations.sh
filter='SignRotation.*'
target=codec/sqz_codec_tests

# name | sed expression (each must change the file)
mutations=(
  "t taken against the whole block, not the rest|s|const double t = sqrt(maxSq / rest);|const double t = sqrt(maxSq / sumSq);|"
  "erf without the 1 / sqrt 2 of its argument|s|erf(t \* 0.70710678118654752440)|erf(t)|"
  "the rest's share left out of the common error|s|const double lost = F - t \* u,|const double lost = F - 0.0 * u,|"
  "common error not normalized by the mean's size|s|\*commonSq = sumSq \* lost \* lost / (kept \* kept);|*commonSq = sumSq * lost * lost;|"
  "one key's error as the Gaussian block's everywhere|s|const double error = (1.0 + t \* t) / (kept \* kept) - 1.0;|const double error = 0.0 * t + 0.57079632679489662;|"
)
run_mutations kernels/sign_rotation_math.h "$build" "$filter" "$target"
a=$?
mutations=(
  "largest value taken from the top of the range only|s|const double maxSq = std::fmax(static_cast<double>(lo) \* lo, static_cast<double>(hi) \* hi);|const double maxSq = static_cast<double>(hi) * hi;|"
  "statistic left out of the pass|s|    rotCommon += common;|    rotCommon += 0.0 * common;|"
)
run_mutations kernels/cpu_codec.cc "$build" "$filter" "$target"
b=$?
[ "$a" -eq 0 ] && [ "$b" -eq 0 ]
