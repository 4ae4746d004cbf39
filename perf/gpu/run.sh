#!/usr/bin/env bash
# Everything issue 6 (item 6) and issue 3 ask of the lent GPU machine (one
# H100, CUDA, maybe PyTorch, no internet), in one command:
#   build     configure + build (Release, CUDA arch 90, NCCL on)
#   codec     GPU codec tests: CPU vs GPU payload bytes, memcheck (issue 3)
#   bench     kernel timings against a device-to-device copy; torch.topk
#   gputests  sqz_gpu_tests: device buffers, threads as ranks over UCX
#             staging, every codec/type/size, NCCL with 1 rank, an adopted
#             ncclComm, stream semantics (the host returns before the GPU)
#   procs     device allreduce with 2 and 4 processes sharing the GPU
#             (mpirun, SQZ_TRANSPORT=ucx)
#   perf      sqz_allreduce_perf -G 1 with 1 rank over NCCL, several codecs
#             (one rank runs the exact plan), and with 2 ranks over UCX
#   app       nccl_app (plain NCCL) alone, then under
#             LD_PRELOAD=libsqz_nccl.so SQZ_COMPRESSION=q4 SQZ_DEBUG=INFO:
#             the log must show ncclAllReduce intercepted and forwarded
#             (also a ctest, gpu_interposer_serves_nccl_app)
#   calibrate sqz_calibrate --full --gpu: PCIe (host<->device, pinned and
#             pageable), device-copy curves and GPU codec throughput into a
#             profile (issue 10 item 5), under $OUT/profile_h100.json
#   ddp       PyTorch DDP, one step, under LD_PRELOAD (optional: needs torch
#             with CUDA; reported, never failing the run)
# Results go under $OUT (else perf/results/gpu): one log per step and
# summary.md (command, commit, device from nvidia-smi, date, each step's
# status). Steps can be picked, e.g. to stay under a per-command time limit
# while the build directory stays between calls:
#   perf/gpu/run.sh [--steps build,codec,...] [ELEMENTS]   (ELEMENTS: bench size, default 64 Mi)
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
root=$PWD
command_line="perf/gpu/run.sh $*"
steps="build,codec,bench,gputests,procs,perf,app,calibrate,ddp"
if [[ "${1:-}" == "--steps" ]]; then
  steps=$2
  shift 2
fi
n="${1:-67108864}"
out="${OUT:-perf/results/gpu}"
mkdir -p "$out"
out=$(cd "$out" && pwd)
build="${SQZ_GPU_BUILD:-build-gpu}"
summary="$out/summary.md"
status=0
mpirun=(mpirun --allow-run-as-root --oversubscribe)
want() { [[ ",$steps," == *",$1,"* ]]; }
log() { echo "== $*" | tee -a "$out/run.log"; }
# result STEP STATUS DETAIL: one row of the summary table.
result() {
  echo "| $1 | $2 | $3 |" >>"$summary"
  log "$1: $2${3:+ ($3)}"
  [[ "$2" == FAILED ]] && status=1
  return 0
}

{
  echo "# sqz GPU run"
  echo
  echo "- command: \`$command_line\` (steps: $steps)"
  echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with local changes)')"
  echo "- host: $(hostname), $(nproc) cores"
} >"$summary"

# No GPU, nothing to do: say so before spending minutes on a build.
if ! command -v nvidia-smi >/dev/null; then
  smi="nvidia-smi is not installed"
elif ! smi=$(nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader 2>&1); then
  smi="nvidia-smi: ${smi//$'\n'/ }"
fi
if [[ -z "$smi" || "$smi" == nvidia-smi* ]]; then
  {
    echo "- device: none"
    echo
    echo "no GPU: $smi; nothing was run."
  } >>"$summary"
  echo "no GPU: $smi; nothing was run (summary in $summary)" | tee -a "$out/run.log" >&2
  exit 2
fi
{
  echo "- device: $smi"
  echo "- nvcc: $(nvcc --version 2>/dev/null | tail -1)"
  echo
  echo "| step | status | detail (logs in this folder) |"
  echo "|---|---|---|"
} >>"$summary"
log "machine"
{ nvidia-smi; nvcc --version | tail -2; date -u; } >>"$out/run.log" 2>&1

# NCCL: the CUDA toolkit's, the system's, or the one PyTorch's wheel brings
# (nvidia-nccl-cu*: headers and libnccl.so.2 only, so give find_library a
# libnccl.so next to it). libsqz loads it at run time: LD_LIBRARY_PATH.
nccl_args=()
if [[ ! -e /usr/local/cuda/include/nccl.h && ! -e /usr/include/nccl.h ]]; then
  wheel=$(python3 -c 'import nvidia.nccl, os; print(os.path.dirname(nvidia.nccl.__file__))' 2>/dev/null ||
          python3 -c 'import nvidia.nccl; print(list(nvidia.nccl.__path__)[0])' 2>/dev/null || true)
  if [[ -n "$wheel" && -e "$wheel/include/nccl.h" ]]; then
    mkdir -p "$build/nccl-lib"
    ln -sf "$wheel/lib/libnccl.so.2" "$build/nccl-lib/libnccl.so"
    nccl_args=(-DSQZ_NCCL_INCLUDE="$wheel/include" -DCMAKE_LIBRARY_PATH="$root/$build/nccl-lib")
    export LD_LIBRARY_PATH="$wheel/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    log "NCCL from PyTorch's wheel: $wheel"
  else
    log "no nccl.h found: the NCCL parts (transport, interposer, nccl_app) will be missing"
  fi
fi

tests="$build/tests/codec/sqz_codec_tests"
bench="$build/perf/codec/sqz_kernel_bench"
if want build; then
  gen=(); command -v ninja >/dev/null && gen=(-G Ninja)
  log "configure + build (Release, SQZ_CUDA_ARCHITECTURES=90, SQZ_WITH_NCCL=ON)"
  if cmake -S . -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DSQZ_CUDA_ARCHITECTURES=90 \
       -DSQZ_WITH_CUDA=ON -DSQZ_WITH_NCCL=ON -DSQZ_BUILD_PERF=ON "${nccl_args[@]}" >"$out/build.log" 2>&1 &&
     cmake --build "$build" -j"$(nproc)" >>"$out/build.log" 2>&1; then
    result build ok "build.log"
  else
    result build FAILED "build.log: $(grep -m1 -E 'error|Error|Could NOT' "$out/build.log" | cut -c1-150)"
    # The codecs need neither UCX nor MPI: build the kernel bench alone
    # with nvcc so that timings come back regardless.
    if [[ ! -x "$bench" ]]; then
      log "building the kernel bench directly with nvcc"
      mkdir -p "$build/direct"
      nvcc -std=c++17 -O3 -arch=sm_90 --fmad=false -I. -Iinclude -DSQZ_HAVE_CUDA=1 \
        perf/gpu/sqz_kernel_bench.cu kernels/cuda_codec.cu kernels/cpu_codec.cc kernels/grad_stats.cc \
        src/codec/codec_spec.cc common/error.cc common/log.cc common/env.cc \
        -Xcompiler=-ffp-contract=off -o "$build/direct/sqz_kernel_bench" >>"$out/build.log" 2>&1 &&
        bench="$build/direct/sqz_kernel_bench"
    fi
  fi
fi
[[ -x "$bench" ]] || { [[ -x "$build/direct/sqz_kernel_bench" ]] && bench="$build/direct/sqz_kernel_bench"; }

# run_step NAME LOGFILE CMD...: runs CMD, its output into LOGFILE (and the
# tail on screen); records ok / FAILED (exit 77, "skipped", is a failure
# here: this machine has a GPU).
run_step() {
  local name=$1 logfile=$2
  shift 2
  log "$name: $*"
  "$@" >"$out/$logfile" 2>&1
  local rc=$?
  tail -15 "$out/$logfile"
  if [[ $rc -eq 0 ]]; then result "$name" ok "$logfile"
  elif [[ $rc -eq 77 ]]; then result "$name" FAILED "$logfile: skipped itself (no device seen?)"
  else result "$name" FAILED "$logfile: exit $rc"
  fi
  return $rc
}

missing() { result "$1" FAILED "$2 not built (see build.log)"; }

if want codec; then
  if [[ -x "$tests" ]]; then
    run_step "codec tests" gpu_codec_tests.txt "$tests" --gtest_filter='*Cuda*'
    # They skip themselves (GTEST_SKIP) where CUDA sees no device.
    if grep -q "^\[  SKIPPED \]" "$out/gpu_codec_tests.txt"; then
      result "codec tests ran" FAILED "gpu_codec_tests.txt: tests skipped on a machine with a GPU"
    fi
    if command -v compute-sanitizer >/dev/null; then
      run_step "codec memcheck" memcheck.txt compute-sanitizer --tool memcheck --error-exitcode 3 "$tests" \
        --gtest_filter='CudaCodec.MalformedPayload*:CudaCodec.RandK*:CudaCodec.HalfInputs*'
    fi
  else
    missing "codec tests" sqz_codec_tests
  fi
fi

if want bench; then
  if [[ -x "$bench" ]]; then
    run_step "kernel bench" kernel_bench.md "$bench" --elements="$n" --reps=20
  else
    missing "kernel bench" sqz_kernel_bench
  fi
  if python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
    run_step "torch.topk" torch_topk.md python3 perf/gpu/torch_topk.py "$n" 20
  else
    result "torch.topk" "not run" "PyTorch with CUDA not available"
  fi
fi

if want gputests; then
  gpu_tests="$build/tests/gpu/sqz_gpu_tests"
  if [[ -x "$gpu_tests" ]]; then
    run_step "sqz_gpu_tests" sqz_gpu_tests.txt "$gpu_tests" --gtest_output="xml:$out/sqz_gpu_tests.xml"
  else
    missing "sqz_gpu_tests" sqz_gpu_tests
  fi
fi

if want procs; then
  rank_process="$build/tests/gpu/sqz_gpu_rank_process"
  for np in 2 4; do
    if [[ -x "$rank_process" ]] && command -v mpirun >/dev/null; then
      run_step "processes np=$np (ucx staging)" "gpu_processes_np$np.txt" \
        "${mpirun[@]}" -x SQZ_TRANSPORT=ucx -x LD_LIBRARY_PATH -np "$np" "$rank_process"
    else
      missing "processes np=$np" "sqz_gpu_rank_process (or mpirun)"
    fi
  done
fi

if want perf; then
  perf_bin="$build/perf/sqz_allreduce_perf"
  if [[ -x "$perf_bin" ]] && command -v mpirun >/dev/null; then
    for spec in none bf16 q8 q4 q2 q1 topk:0.01 randk:0.01 auto; do
      f="perf_nccl_1rank_${spec//:/_}.txt"
      run_step "allreduce_perf -G 1, 1 rank, nccl, $spec" "$f" \
        "${mpirun[@]}" -x SQZ_TRANSPORT=nccl -x LD_LIBRARY_PATH -np 1 "$perf_bin" -G 1 -b 1M -e 256M -f 4 \
        -n 20 -w 5 -c 1 -Z "$spec"
      if [[ $spec == none ]] && ! grep -q "Out of bounds values : 0 OK" "$out/$f"; then
        result "allreduce_perf exact check" FAILED "$f"
      fi
    done
    # One rank has nothing to compress (sqz runs its exact plan there): the
    # compressed device plans, with 2 ranks sharing the GPU over UCX staging.
    for spec in none q4 topk:0.01 randk:0.01; do
      run_step "allreduce_perf -G 1, 2 ranks, ucx, $spec" "perf_ucx_2ranks_${spec//:/_}.txt" \
        "${mpirun[@]}" -x SQZ_TRANSPORT=ucx -x LD_LIBRARY_PATH -np 2 "$perf_bin" -G 1 -b 1M -e 64M -f 4 \
        -n 10 -w 3 -c 1 -Z "$spec"
    done
  else
    missing "allreduce_perf" "sqz_allreduce_perf (or mpirun)"
  fi
fi

interposer="$root/$build/src/nccl_interposer/libsqz_nccl.so"
if want app; then
  app="$build/perf/gpu/nccl_app"
  if [[ -x "$app" && -e "$interposer" ]]; then
    run_step "nccl_app (plain NCCL)" nccl_app_plain.txt "$app"
    if run_step "nccl_app under LD_PRELOAD, q4" nccl_app_preload.txt \
         env LD_PRELOAD="$interposer" SQZ_COMPRESSION=q4 SQZ_DEBUG=INFO "$app" --tolerance 0.3; then
      applog="$out/nccl_app_preload.txt"
      grep -q "intercepted ncclAllReduce" "$applog" || result "interposer intercepts" FAILED "no 'intercepted ncclAllReduce'"
      grep -q "forwarding ncclAllReduce" "$applog" || result "interposer forwards" FAILED "no 'forwarding ncclAllReduce'"
      grep -q "destroyed the sqz communicator" "$applog" ||
        result "interposer releases" FAILED "no 'destroyed the sqz communicator' at ncclCommDestroy"
      grep -E "sqz-nccl: .*(intercepted|forwarding|adopted|destroyed)" "$applog" | sed 's/^/    /' >>"$summary"
    fi
    run_step "nccl_app under LD_PRELOAD, ncclCommInitAll" nccl_app_preload_initall.txt \
      env LD_PRELOAD="$interposer" SQZ_COMPRESSION=q8 SQZ_DEBUG=INFO "$app" --init all --tolerance 0.05
  else
    missing "nccl_app" "nccl_app or libsqz_nccl.so"
  fi
fi

if want calibrate; then
  cal_bin="$build/perf/tuner/sqz_calibrate"
  if [[ -x "$cal_bin" ]]; then
    run_step "sqz_calibrate --full --gpu" calibrate.txt "$cal_bin" --full --gpu --out "$out/profile_h100.json"
  else
    missing "calibrate" "sqz_calibrate"
  fi
fi

if want ddp; then
  if python3 -c 'import torch, torch.distributed as d; assert torch.cuda.is_available() and d.is_nccl_available()' \
       2>/dev/null && [[ -e "$interposer" ]]; then
    run_step "PyTorch (plain NCCL)" ddp_plain.txt python3 perf/gpu/ddp_smoke.py
    if run_step "PyTorch DDP under LD_PRELOAD, q4" ddp_preload.txt \
         env LD_PRELOAD="$interposer" SQZ_COMPRESSION=q4 SQZ_DEBUG=INFO python3 perf/gpu/ddp_smoke.py --lossy; then
      if grep -q "intercepted ncclAllReduce" "$out/ddp_preload.txt"; then
        result "PyTorch interception" ok "ncclAllReduce intercepted"
      else
        # Not a failure: a torch build with NCCL linked statically binds
        # its calls before any preload can see them.
        result "PyTorch interception" "not seen" "torch's NCCL calls did not reach the interposer (NCCL linked statically?)"
      fi
    fi
  else
    result "PyTorch DDP" "not run" "torch with CUDA and NCCL not available (optional)"
  fi
fi

echo >>"$summary"
echo "overall: $([[ $status -eq 0 ]] && echo ok || echo FAILED)" >>"$summary"
log "done (status $status); results in $out"
cat "$summary"
exit $status
