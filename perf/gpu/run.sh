#!/usr/bin/env bash
# The GPU check, in one command, sized for the lent GPU machine (one H200,
# 16 cores, CUDA's nvcc, CMake, ninja, PyTorch with the nvidia-nccl wheel;
# no UCX, Open MPI, GoogleTest, Google Benchmark, nlohmann-json, no package
# registry; 15 minutes of machine time in all, 10 for one command):
#
#   perf/gpu/fetch_deps.sh        # here, once: the Debian packages into .gpu-deps/
#   perf/gpu/run.sh               # there (the device tool carries .gpu-deps)
#
# Steps, in order, each under its own `timeout` (and all of them under
# --budget seconds, 450 by default, so the command ends within 8 minutes),
# with SQZ_TIMEOUT=20 so that a hang costs seconds:
#   deps       unpack .gpu-deps/*.deb with dpkg -x into a private prefix
#              (BUILD/prefix, never /) and point CMake, pkg-config, the loader
#              and Open MPI (OPAL_PREFIX, PMIx) at it
#   configure  CMake, Release, sm_90 only, NCCL from the CUDA toolkit or
#              PyTorch's nvidia-nccl wheel (or SQZ_NCCL_HOME: include/, lib/)
#   build      only the targets below, -j(nproc)
#   mpi        2 processes under the carried mpirun, over the carried UCX
#              (host buffers against MPI_Allreduce: no GPU needed)
#   codec      the codec kernels against the CPU codec: payload bytes
#              identical where promised (sqz_codec_tests '*Cuda*'). Without
#              a GPU the run stops here: "no GPU", every later step SKIP, and
#              the exit code is 2 (what the rehearsal in CI expects)
#   bench      kernel GB/s next to a device-to-device copy (sqz_kernel_bench),
#              top-K next to torch.topk (torch_topk.py)
#   gputests   sqz_gpu_tests: a fast subset first, then the rest
#   procs      2 and 4 processes sharing the GPU over UCX staging (mpirun)
#   app        nccl_app alone and under LD_PRELOAD=libsqz_nccl.so
#              (tests/interposer/test_serving.sh), and with ncclCommInitAll
#   ddp        PyTorch DDP, one step, alone and under LD_PRELOAD: PASS needs
#              both to pass and the preloaded run's calls served by sqz
#              (FAIL otherwise; SKIP without torch.cuda)
# SQZ_GPU_TIME_SCALE multiplies every step's limit (the rehearsal's 2 cores).
# Optional steps (--steps LIST picks any; default: all of the above):
# memcheck (compute-sanitizer on the codec kernels). Every step writes its
# log under $OUT (default BUILD/results; BUILD is $SQZ_GPU_BUILD, default
# build-gpu), and summary.md beside them; the output ends with one
# line per step: PASS, FAIL or SKIP, seconds, log. Exit code: 0 all passed,
# 1 a step failed, 2 no GPU (everything before the GPU steps passed).
#   perf/gpu/run.sh [--budget SECONDS] [--steps LIST] [--elements N]
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
root=$PWD
steps="deps,configure,build,mpi,codec,bench,gputests,procs,app,ddp"
budget=450
elements=$((64 << 20))
while [[ $# -gt 0 ]]; do
  case $1 in
    --steps) steps=$2; shift 2 ;;
    --budget) budget=$2; shift 2 ;;
    --elements) elements=$2; shift 2 ;;
    *) echo "usage: perf/gpu/run.sh [--budget SECONDS] [--steps LIST] [--elements N]" >&2; exit 64 ;;
  esac
done
build=${SQZ_GPU_BUILD:-build-gpu}
mkdir -p "$build" && build=$(cd "$build" && pwd)
out=${OUT:-$build/results}
mkdir -p "$out" && out=$(cd "$out" && pwd)
deps=${SQZ_GPU_DEPS:-$root/.gpu-deps}
prefix=$build/prefix
jobs=${SQZ_GPU_JOBS:-$(nproc)}
# Each step's limit is sized for the GPU machine (16 cores); a slower
# machine (the rehearsal: 2 cores, maybe a cold compiler cache) scales them.
scale=${SQZ_GPU_TIME_SCALE:-1}
start=$(date +%s)
summary=()
status=0
no_gpu=""

export SQZ_TIMEOUT=${SQZ_TIMEOUT:-20}
export CUDA_MODULE_LOADING=${CUDA_MODULE_LOADING:-EAGER}  # a second guard: sqz preloads its kernels itself
export UCX_WARN_UNUSED_ENV_VARS=n
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export PYTHONUNBUFFERED=1

source perf/gpu/prefix_env.sh
want() { [[ ",$steps," == *",$1,"* ]]; }
elapsed() { echo $(($(date +%s) - start)); }
# record STATUS NAME SECONDS DETAIL: one summary line.
record() {
  summary+=("$(printf '%-4s %-48s %4ss  %s' "$1" "$2" "$3" "$4")")
  echo "== $1 $2 ($3 s) $4"
  [[ $1 == FAIL ]] && status=1
  return 0
}
skip() { record SKIP "$1" 0 "$2"; }
# limited LIMIT LOG CMD...: CMD (a program or a function of this script) in
# a process group of its own, its output into LOG, killed whole after LIMIT
# seconds (status 124, as timeout(1) gives).
limited() {
  local limit=$1 logfile=$2
  shift 2
  set -m
  ("$@") >"$logfile" 2>&1 </dev/null &
  local pid=$! ticks=0
  set +m
  while kill -0 "$pid" 2>/dev/null; do
    if ((ticks >= limit * 10)); then
      kill -TERM -- "-$pid" 2>/dev/null
      sleep 3
      kill -KILL -- "-$pid" 2>/dev/null
      wait "$pid" 2>/dev/null
      return 124
    fi
    sleep 0.1
    ticks=$((ticks + 1))
  done
  wait "$pid"
}
# step NAME LIMIT LOG CMD...: runs CMD limited to LIMIT seconds (less when
# the budget has less left), its output into $out/LOG; records PASS or FAIL,
# and returns CMD's exit status.
step() {
  local name=$1 limit=$2 logfile=$3
  shift 3
  limit=$((limit * scale))
  local left=$((budget - $(elapsed)))
  if ((left < 10)); then
    skip "$name" "budget of ${budget}s spent"
    return 125
  fi
  ((limit > left)) && limit=$left
  echo "== $name: $* (up to ${limit}s)"
  local t0=$(date +%s) rc
  limited "$limit" "$out/$logfile" "$@"
  rc=$?
  local secs=$(($(date +%s) - t0))
  tail -n 8 "$out/$logfile" | sed 's/^/   | /'
  if ((rc == 0)); then record PASS "$name" "$secs" "$logfile"
  elif ((rc == 124)); then record FAIL "$name" "$secs" "$logfile: timed out after ${limit}s"
  elif ((rc == 77)); then record FAIL "$name" "$secs" "$logfile: skipped itself (no device seen?)"
  else record FAIL "$name" "$secs" "$logfile: exit $rc"
  fi
  return $rc
}
finish() {
  {
    echo "# sqz GPU check"
    echo
    echo "- command: perf/gpu/run.sh (steps $steps, budget ${budget}s), $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (local changes)')"
    echo "- host: $(nproc) cores; GPU: ${gpu_name:-none}${no_gpu:+ ($no_gpu)}"
    echo
    echo '```'
    printf '%s\n' "${summary[@]}"
    echo '```'
    for f in kernel_bench.md torch_topk.md; do [[ -s $out/$f ]] && { echo; cat "$out/$f"; }; done
  } >"$out/summary.md"
  echo
  echo "== sqz GPU check: $(elapsed) s; logs and summary.md in $out"
  printf '%s\n' "${summary[@]}"
  if [[ -n $no_gpu ]]; then echo "no GPU: $no_gpu"; exit $((status ? 1 : 2)); fi
  exit $status
}

# --- deps: the carried Debian packages in a private prefix -----------------
unpack_deps() {
  rm -rf "$prefix" && mkdir -p "$prefix" || return 1
  local deb n=0
  for deb in "$deps"/*.deb; do
    if command -v dpkg-deb >/dev/null; then
      dpkg-deb -x "$deb" "$prefix" || return 1
    else  # a .deb is an ar archive holding data.tar.{xz,zst,gz}
      local member z
      member=$(ar t "$deb" | grep '^data\.tar') || return 1
      case $member in *.xz) z=-J ;; *.zst) z=--zstd ;; *.gz) z=-z ;; *) z= ;; esac
      ar p "$deb" "$member" | tar -x $z -C "$prefix" -f - || return 1
    fi
    n=$((n + 1))
  done
  echo "unpacked $n packages from $deps into $prefix"
  prefix_links "$prefix"
}
if want deps; then
  if compgen -G "$deps/*.deb" >/dev/null; then
    step "deps: unpack into a private prefix" 60 deps.log unpack_deps && prefix_use "$prefix"
  else
    skip "deps: unpack into a private prefix" "no $deps/*.deb (perf/gpu/fetch_deps.sh): the system's packages"
  fi
fi

# --- configure and build ----------------------------------------------------
# NCCL: SQZ_NCCL_HOME (include/nccl.h, lib/libnccl.so.2), else the CUDA
# toolkit's, else PyTorch's nvidia-nccl wheel. libsqz loads it at run time.
nccl_args=()
nccl_home=${SQZ_NCCL_HOME:-}
if [[ -z $nccl_home && ! -e /usr/local/cuda/include/nccl.h && ! -e /usr/include/nccl.h ]]; then
  nccl_home=$(python3 -c 'import nvidia.nccl as m, os; print(os.path.dirname(m.__file__) if m.__file__ else list(m.__path__)[0])' 2>/dev/null || true)
fi
if [[ -n $nccl_home && -e $nccl_home/include/nccl.h ]]; then
  mkdir -p "$build/nccl-lib"
  ln -sf "$nccl_home/lib/libnccl.so.2" "$build/nccl-lib/libnccl.so"  # the wheel has no libnccl.so
  ln -sf "$nccl_home/lib/libnccl.so.2" "$build/nccl-lib/libnccl.so.2"
  nccl_args=(-DSQZ_NCCL_INCLUDE="$nccl_home/include" -DCMAKE_LIBRARY_PATH="$build/nccl-lib")
  export LD_LIBRARY_PATH="$build/nccl-lib:${LD_LIBRARY_PATH:-}"
  echo "== NCCL from $nccl_home"
fi
configure() {
  local launcher=()
  command -v ccache >/dev/null &&
    launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
  local found=()
  [[ -x $prefix/bin/mpicc ]] && found=(-DMPI_C_COMPILER="$prefix/bin/mpicc")
  # tests/mpi_interposer looks for /usr/bin/python3 only; a machine whose
  # python3 lives elsewhere names it.
  [[ -x /usr/bin/python3 ]] || found+=(-DSQZ_SYSTEM_PYTHON="$(command -v python3)")
  # No Fortran: none of the check's targets is, and a Fortran compiler would
  # make CMake look for Open MPI's Fortran bindings (tests/mpi_interposer),
  # whose link needs -dev packages that are not carried.
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSQZ_CUDA_ARCHITECTURES=90 -DSQZ_WITH_CUDA=ON \
    -DSQZ_WITH_NCCL=ON -DSQZ_BUILD_TESTS=ON -DSQZ_BUILD_PERF=ON -DSQZ_WERROR=ON -DCMAKE_Fortran_COMPILER=NOTFOUND \
    "${launcher[@]}" "${found[@]}" "${nccl_args[@]}"
}
targets=(sqz sqz_nccl mpi_allreduce_check sqz_codec_tests sqz_kernel_bench sqz_gpu_tests sqz_gpu_rank_process nccl_app)
build_targets() {
  local have=() t
  local known
  known=$(cmake --build "$build" --target help) || return 1
  for t in "${targets[@]}"; do
    if grep -q "^$t:" <<<"$known"; then have+=("$t"); else echo "target $t does not exist in this configuration"; fi
  done
  cmake --build "$build" -j "$jobs" --target "${have[@]}"
}
configured=0 built=0
if want configure; then step configure 120 configure.log configure && configured=1; fi
if want build && ((configured)); then
  step "build (-j$jobs, sm_90, ${#targets[@]} targets)" 330 build.log build_targets && built=1
elif want build; then
  skip "build" "not configured"
fi
bin() { echo "$build/$1"; }

# --- no GPU needed: the carried MPI and UCX run ---------------------------
if want mpi; then
  if [[ -x $(bin tests/mpi_allreduce_check) ]] && command -v mpirun >/dev/null; then
    step "mpi: 2 processes, carried mpirun + UCX" 60 mpi.log \
      mpirun --allow-run-as-root --oversubscribe --mca op ^avx -np 2 "$(bin tests/mpi_allreduce_check)"
  else
    record FAIL "mpi: 2 processes, carried mpirun + UCX" 0 "mpi_allreduce_check or mpirun missing"
  fi
fi

# --- the GPU steps ----------------------------------------------------------
gpu_steps=(codec bench gputests procs app ddp memcheck)
probe=$(bin tests/gpu/sqz_gpu_rank_process)
gpu_name=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)
wanted_gpu=0
for s in "${gpu_steps[@]}"; do want "$s" && wanted_gpu=1; done
if ((wanted_gpu)); then
  if [[ ! -x $probe ]]; then
    no_gpu="sqz_gpu_rank_process was not built, so the device could not be probed"
  else
    why=$("$probe" --probe 2>&1)
    rc=$?
    ((rc == 77)) && no_gpu=${why:-the CUDA runtime sees no device}
    ((rc != 0 && rc != 77)) && no_gpu="the device probe failed (exit $rc): $why"
  fi
  if [[ -n $no_gpu ]]; then
    echo "no GPU: $no_gpu"
    for s in "${gpu_steps[@]}"; do want "$s" && skip "$s" "no GPU"; done
    finish
  fi
  { nvidia-smi; nvcc --version; python3 -c 'import torch; print("torch", torch.__version__, torch.version.cuda)'; } \
    >"$out/machine.log" 2>&1
fi

codec_tests=$(bin tests/codec/sqz_codec_tests)
if want codec; then
  if step "codec: CUDA kernels vs the CPU codec" 90 codec.log "$codec_tests" --gtest_filter='*Cuda*' &&
     grep -q "SKIPPED" "$out/codec.log"; then
    record FAIL "codec: no test skipped" 0 "codec.log: a CUDA test skipped itself on a GPU machine"
  fi
fi

if want bench; then
  step "bench: kernels (GB/s) vs device-to-device copy" 90 kernel_bench.md \
    "$(bin perf/codec/sqz_kernel_bench)" --elements="$elements" --reps=20
  if python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
    step "bench: torch.topk, same size and K" 60 torch_topk.md python3 perf/gpu/torch_topk.py "$elements" 20
  else
    skip "bench: torch.topk" "torch with CUDA not importable"
  fi
fi

if want gputests; then
  gpu_tests=$(bin tests/gpu/sqz_gpu_tests)
  fast='AllCodecs/DeviceCodecs.*_n1:AllCodecs/DeviceCodecs.*_n2:DeviceAllReduce.InPlace:DeviceAllReduce.ReturnsBeforeTheGpuFinishes:DeviceNccl.*'
  if step "gputests: fast subset (1-2 ranks, NCCL)" 90 gputests_fast.log "$gpu_tests" --gtest_filter="$fast"; then
    step "gputests: the rest" 150 gputests_rest.log "$gpu_tests" --gtest_filter="-$fast"
  else
    skip "gputests: the rest" "the fast subset failed"
  fi
fi

if want procs; then
  for np in 2 4; do
    step "procs: $np processes on one GPU, UCX staging" 60 "procs_np$np.log" \
      mpirun --allow-run-as-root --oversubscribe -x SQZ_TRANSPORT=ucx -x SQZ_TIMEOUT -x CUDA_MODULE_LOADING \
      -x LD_LIBRARY_PATH -x UCX_WARN_UNUSED_ENV_VARS -np "$np" "$probe"
  done
fi

interposer=$(bin src/nccl_interposer/libsqz_nccl.so)
if want app; then
  app=$(bin perf/gpu/nccl_app)
  if [[ -x $app && -e $interposer ]]; then
    step "app: nccl_app under the interposer" 60 app.log tests/interposer/test_serving.sh "$app" "$interposer"
    step "app: nccl_app, ncclCommInitAll, interposer" 45 app_initall.log \
      env LD_PRELOAD="$interposer" SQZ_COMPRESSION=q8 SQZ_DEBUG=INFO "$app" --init all --tolerance 0.05
  else
    record FAIL "app: nccl_app under the interposer" 0 "nccl_app or libsqz_nccl.so not built (no nccl.h?)"
  fi
fi

ddp() {
  python3 perf/gpu/ddp_smoke.py || { echo "ddp_smoke fails without the interposer"; return 1; }
  local log
  log=$(env LD_PRELOAD="$interposer" SQZ_COMPRESSION=q4 SQZ_DEBUG=INFO python3 perf/gpu/ddp_smoke.py --lossy 2>&1)
  local rc=$?
  echo "$log"
  ((rc == 0)) || { echo "ddp_smoke fails under the interposer (exit $rc)"; return 1; }
  grep -q "intercepted ncclAllReduce" <<<"$log" ||
    { echo "no ncclAllReduce served by sqz: see the summary line above for why"; return 1; }
}
if want ddp; then
  if python3 -c 'import torch, torch.distributed as d; assert torch.cuda.is_available() and d.is_nccl_available()' \
       2>/dev/null && [[ -e $interposer ]]; then
    step "ddp: DDP step alone and under the interposer" 120 ddp.log ddp
  else
    skip "ddp: DDP step" "torch with CUDA and NCCL (or libsqz_nccl.so) not available"
  fi
fi

if want memcheck; then
  if command -v compute-sanitizer >/dev/null; then
    step "memcheck: codec kernels" 120 memcheck.log compute-sanitizer --tool memcheck --error-exitcode 3 \
      "$codec_tests" --gtest_filter='CudaCodec.MalformedPayload*:CudaCodec.RandK*:CudaCodec.HalfInputs*'
  else
    skip "memcheck" "compute-sanitizer not on PATH"
  fi
fi
finish
