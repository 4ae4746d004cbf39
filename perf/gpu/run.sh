#!/usr/bin/env bash
# On the lent GPU machine (one H100, CUDA, maybe PyTorch, no internet):
# build, run the GPU codec tests (CPU vs GPU payload bytes), time every
# kernel against a device-to-device copy, and top-K against torch.topk.
# Writes everything under $OUT (or perf/results/gpu) and prints the table.
#   perf/gpu/run.sh [ELEMENTS]      (default 67108864 = 64 Mi fp32)
set -uo pipefail
cd "$(dirname "$0")/../.."
n="${1:-67108864}"
out="${OUT:-perf/results/gpu}"
mkdir -p "$out"
build=build-gpu
status=0
log() { echo "== $*" | tee -a "$out/run.log"; }

log "machine"
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; nvcc --version | tail -2; date -u; } \
  2>&1 | tee -a "$out/run.log"

gen=(); command -v ninja >/dev/null && gen=(-G Ninja)
log "configure + build (SQZ_CUDA_ARCHITECTURES=90)"
if cmake -S . -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DSQZ_CUDA_ARCHITECTURES=90 \
     -DSQZ_WITH_NCCL=OFF -DSQZ_BUILD_PERF=ON >>"$out/run.log" 2>&1 &&
   cmake --build "$build" -j"$(nproc)" --target sqz_codec_tests sqz_kernel_bench >>"$out/run.log" 2>&1; then
  tests="$build/tests/codec/sqz_codec_tests"
  bench="$build/perf/codec/sqz_kernel_bench"
else
  # The full project needs UCX (and MPI for perf); the codecs do not. Build
  # the kernel bench alone with nvcc so timings come back regardless.
  log "cmake build failed (see run.log); building the kernel bench directly with nvcc"
  mkdir -p "$build/direct"
  nvcc -std=c++17 -O3 -arch=sm_90 --fmad=false -I. -Iinclude -DSQZ_HAVE_CUDA=1 \
    perf/gpu/sqz_kernel_bench.cu kernels/cuda_codec.cu kernels/cpu_codec.cc kernels/grad_stats.cc \
    src/codec/codec_spec.cc common/error.cc common/log.cc common/env.cc \
    -Xcompiler=-ffp-contract=off -o "$build/direct/sqz_kernel_bench" >>"$out/run.log" 2>&1 || status=1
  tests=""
  bench="$build/direct/sqz_kernel_bench"
fi

if [[ -n "$tests" && -x "$tests" ]]; then
  log "GPU codec tests (CPU vs GPU payload bytes, residuals, decode, statistics)"
  "$tests" --gtest_filter='*Cuda*' 2>&1 | tee "$out/gpu_tests.txt" | tail -25
  [[ ${PIPESTATUS[0]} -eq 0 ]] || status=1
  if command -v compute-sanitizer >/dev/null; then
    log "compute-sanitizer memcheck on the malformed-payload and small-input tests"
    compute-sanitizer --tool memcheck --error-exitcode 3 "$tests" \
      --gtest_filter='CudaCodec.MalformedPayload*:CudaCodec.RandK*:CudaCodec.HalfInputs*' 2>&1 |
      tee "$out/memcheck.txt" | tail -8
    [[ ${PIPESTATUS[0]} -eq 0 ]] || status=1
  fi
fi

log "kernel timings"
if [[ -x "$bench" ]]; then
  "$bench" --elements="$n" --reps=20 2>&1 | tee "$out/kernel_bench.md"
  [[ ${PIPESTATUS[0]} -eq 0 ]] || status=1
else
  status=1
fi

log "torch.topk for the same K"
if python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
  python3 perf/gpu/torch_topk.py "$n" 20 2>&1 | tee "$out/torch_topk.md"
else
  echo "PyTorch with CUDA not available: no torch.topk comparison" | tee "$out/torch_topk.md"
fi
log "done (status $status); results in $out"
exit $status
