#!/bin/bash
# Alternating launches, 3 each: "rs" = issue-19-shm (its worktree build), "main" = main 20d7956
# (git archive into /tmp/i19s5-main, built with the same flags); both CPU-only RelWithDebInfo with
# .ci/build.sh's flags. Small sizes, then 128K-32M, then 64M: the same three mpirun lines as rounds 1-3
# (now in ../loopback.sh, which later rounds call with their own builds).
# usage (under /work/tools/quiet.sh): run.sh OUTDIR RS_BUILD MAIN_BUILD
out=$1
: > "$out/when.txt"
exec "$(dirname "$0")/../loopback.sh" "$out" rs="$2" main="$3"
