#!/usr/bin/env bash
# Builds the fuzz targets with clang's libFuzzer, ASan and UBSan (apart from
# the g++ build), generates their seed corpora, and fuzzes each for a bounded
# time. Fails on any crash, leak or sanitizer report.
#   decode     the payload decoder                       SECONDS (default 60)
#   bootstrap  rendezvous messages, blob table, peer info  SQZ_FUZZ_TARGET_SECONDS (default 15)
#   spec       codec specs, plan names, SQZ_TUNE tables    SQZ_FUZZ_TARGET_SECONDS
#   profile    Profile::fromJson                           SQZ_FUZZ_TARGET_SECONDS
#   .ci/fuzz.sh [SECONDS]        (needs clang-14 + libclang-rt-14-dev, libssl-dev, nlohmann-json3-dev)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
targetSeconds="${SQZ_FUZZ_TARGET_SECONDS:-15}"
out="${SQZ_FUZZ_DIR:-build-fuzz}"
cxx="${CXX_FUZZ:-clang++-14}"
command -v "$cxx" >/dev/null || cxx=clang++
mkdir -p "$out/artifacts" "$out/obj"
for t in decode bootstrap spec profile; do mkdir -p "$out/corpus/$t"; done

common=(common/error.cc common/log.cc common/env.cc common/strict_number.cc)
codec=(kernels/cpu_codec.cc kernels/cpu_sign_rotation.cc kernels/grad_stats.cc src/codec/codec_spec.cc)
bootstrap=(src/bootstrap/handshake.cc src/bootstrap/hmac.cc src/bootstrap/peer_info.cc)
# Plan names are checked against the algorithm table, whose entries hold
# each algorithm's run and cost shape: the parsers link those too (and the
# link curve, from which the table's bound across nodes is read).
spec=(src/tuner/plan_name.cc src/tuner/tune_table.cc src/tuner/link_curve.cc src/tuner/algorithm_table.cc src/tuner/allreduce_shapes.cc
      collectives/call_agreement.cc collectives/codec_buffers.cc collectives/codec_ring_allreduce.cc
      collectives/direct_allreduce.cc collectives/rank_order_reduction.cc collectives/shm_allreduce.cc
      collectives/shm_rs_allreduce.cc collectives/shm_segment.cc
      collectives/quantized_allreduce.cc collectives/gather_allreduce.cc collectives/allgather.cc collectives/randk_allreduce.cc collectives/reduce_ops.cc
      collectives/ring_allreduce.cc collectives/ring_schedule.cc collectives/sparse_allreduce.cc)
profile=(src/tuner/profile.cc src/tuner/link_class.cc src/tuner/codec_throughput.cc
         src/tuner/wire_cost_model.cc)
flags=(-std=c++17 -O1 -g -I. -Iinclude -ffp-contract=off -fno-omit-frame-pointer)
san=(-fsanitize=address,undefined -fno-sanitize-recover=undefined)

# Each source once (through ccache when there is one: CI's warm cache then
# skips the compiles), with coverage for the fuzzers, on every core.
cc=("$cxx")
if command -v ccache >/dev/null; then cc=(ccache "$cxx"); fi
obj() { echo "$out/obj/${1//\//_}.o"; }
compile() { "${cc[@]}" "${flags[@]}" "${san[@]}" -fsanitize=fuzzer-no-link -c "$1" -o "$(obj "$1")"; }
running=0  # a failed compile's `wait -n` ends the script (set -e)
for s in $(printf '%s\n' "${common[@]}" "${codec[@]}" "${bootstrap[@]}" "${spec[@]}" "${profile[@]}" | sort -u); do
  if (( running >= $(nproc) )); then wait -n; running=$((running - 1)); fi
  compile "$s" &
  running=$((running + 1))
done
while (( running > 0 )); do wait -n; running=$((running - 1)); done
objs() { for s in "$@"; do obj "$s"; done; }

build() {  # name sources...
  local name=$1
  shift
  "$cxx" "${flags[@]}" "${san[@]}" -fsanitize=fuzzer "tests/fuzz/${name}_fuzz.cc" $(objs "$@") -lcrypto \
    -o "$out/sqz_${name}_fuzz"
}
build decode "${codec[@]}" "${common[@]}"
build bootstrap "${bootstrap[@]}" "${common[@]}"
build spec "${spec[@]}" "${codec[@]}" "${common[@]}"
build profile "${profile[@]}" "${spec[@]}" "${codec[@]}" "${common[@]}"
"$cxx" "${flags[@]}" "${san[@]}" tests/fuzz/make_corpus.cc $(objs "${codec[@]}" "${bootstrap[@]}" "${spec[@]}" \
  "${profile[@]}" "${common[@]}") -lcrypto -o "$out/make_corpus"
"$out/make_corpus" "$out/corpus"

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
fuzz() {  # name seconds max_len
  "$out/sqz_$1_fuzz" -max_total_time="$2" -max_len="$3" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$out/artifacts/$1-" -print_final_stats=1 "$out/corpus/$1"
  echo "fuzz $1: no crash in $2s"
}
fuzz decode "$seconds" 8192
fuzz bootstrap "$targetSeconds" 4096
fuzz spec "$targetSeconds" 256
fuzz profile "$targetSeconds" 8192
