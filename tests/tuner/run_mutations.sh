# Sourced by the tuner's mutation scripts (progress_model_mutations.sh,
# stats_cadence_mutations.sh): applies each entry of the caller's
# `mutations` array ("name|sed expression", each must change the file) to
# SRC in turn, rebuilds the test binary in BUILD, runs the tests matching
# FILTER and counts a mutation as caught when one of them fails; restores
# SRC after each and at exit. ONLY=TEXT tries only the mutations whose name
# contains TEXT. Exits 0 only when every mutation tried is caught. TARGET
# (default sqz_tuner_tests, under tests/tuner) is the test binary rebuilt
# and run, as DIR/NAME under the build's tests/.
#   run_mutations SRC BUILD FILTER [TARGET]
run_mutations() {
  local src=$1 build=$2 filter=$3 target=${4:-tuner/sqz_tuner_tests} backup caught=0 tried=0 m name expr failed log
  backup=$(mktemp)
  log=/tmp/$(basename "$src" .cc)_mutation_build.log
  cp "$src" "$backup"
  # shellcheck disable=SC2064
  trap "cp '$backup' '$src'; rm -f '$backup'" EXIT
  for m in "${mutations[@]}"; do
    name=${m%%|*}
    case $name in *"${ONLY:-}"*) ;; *) continue;; esac
    tried=$((tried + 1))
    expr=${m#*|}
    cp "$backup" "$src"
    sed -i "$expr" "$src"
    if cmp -s "$backup" "$src"; then echo "MUTATION DID NOT APPLY: $name"; exit 2; fi
    if ! cmake --build "$build" --target "$(basename "$target")" > "$log" 2>&1; then
      echo "BUILD FAILED: $name (see $log)"; exit 2
    fi
    failed=$("$build/tests/$target" --gtest_filter="$filter" 2>&1 |
             sed -n 's/^\[  FAILED  \] \([A-Za-z.]*\) (.*/\1/p' | tr '\n' ' ')
    if [ -n "$failed" ]; then
      echo "caught: $name -> $failed"
      caught=$((caught + 1))
    else
      echo "NOT CAUGHT: $name"
    fi
  done
  cp "$backup" "$src"
  cmake --build "$build" --target "$(basename "$target")" > /dev/null 2>&1
  echo "$caught of $tried mutations caught"
  [ "$caught" -eq "$tried" ]
}
