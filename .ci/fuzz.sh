#!/usr/bin/env bash
# Builds the payload-decoder fuzz target with clang's libFuzzer, ASan and
# UBSan (apart from the g++ build), generates the seed corpus, and fuzzes for
# a bounded time. Fails on any crash, leak or sanitizer report.
#   .ci/fuzz.sh [SECONDS]        (default 60; needs clang-14 + libclang-rt-14-dev)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
out="${SQZ_FUZZ_DIR:-build-fuzz}"
cxx="${CXX_FUZZ:-clang++-14}"
command -v "$cxx" >/dev/null || cxx=clang++
mkdir -p "$out/corpus" "$out/artifacts"

srcs=(kernels/cpu_codec.cc kernels/grad_stats.cc src/codec/codec_spec.cc common/error.cc common/log.cc common/env.cc)
flags=(-std=c++17 -O1 -g -I. -Iinclude -ffp-contract=off -fno-omit-frame-pointer)
san=(-fsanitize=address,undefined -fno-sanitize-recover=undefined)

"$cxx" "${flags[@]}" "${san[@]}" -fsanitize=fuzzer tests/fuzz/decode_fuzz.cc "${srcs[@]}" -o "$out/sqz_decode_fuzz"
"$cxx" "${flags[@]}" "${san[@]}" tests/fuzz/make_corpus.cc "${srcs[@]}" -o "$out/make_corpus"
"$out/make_corpus" "$out/corpus"

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
"$out/sqz_decode_fuzz" -max_total_time="$seconds" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
  -artifact_prefix="$out/artifacts/" -print_final_stats=1 "$out/corpus"
echo "fuzz: no crash in ${seconds}s"
