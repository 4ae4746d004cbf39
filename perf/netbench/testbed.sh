#!/usr/bin/env bash
# sqz link testbed: N Linux network namespaces ("nodes") on one bridge, each
# link rate-shaped with tc tbf on both ends of its veth pair, and an mpirun
# launcher that puts rank r into namespace r / K. See README.md beside this
# file and DESIGN.md section 5.
#
#   testbed.sh up      --ns N [--ranks-per-ns K] --rate RATE [--burst B] [--name P] [--subnet A.B.C] [--delay D]
#   testbed.sh down    [--name P]
#   testbed.sh status  [--name P]
#   testbed.sh run     [--ns N] [--ranks-per-ns K] [--name P] [--ucx-tls T] [--pml ob1|ucx]
#                      [--env NAME=VAL]... [--mpirun-arg ARG]... -- PROGRAM ARGS...
#   testbed.sh with    --ns N [--ranks-per-ns K] --rate RATE [up/run options] -- PROGRAM ARGS...
#   testbed.sh measure [--name P] [--from I] [--to J] [--seconds S]      (existing testbed)
#   testbed.sh measure --rate RATE [--seconds S]                        (temporary 2-ns testbed)
#
# Must run as root (namespaces, veths, tc). Needs iproute2 (ip, tc), Open MPI
# (mpirun) for `run`, python3 for `measure` and for picking MASTER_PORT.
set -Eeuo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SELF="$HERE/$(basename "${BASH_SOURCE[0]}")"
STATE_DIR="${SQZ_NETBENCH_STATE_DIR:-/run/sqz-netbench}"
DEFAULT_PREFIX=sqzns
DEFAULT_SUBNET=10.213.0        # first three octets of the private /24
BRIDGE_HOST=254                # the bridge's (root namespace's) last octet
PYTHON="$(command -v python3 || true)"
[[ -x /usr/bin/python3 ]] && PYTHON=/usr/bin/python3

die()  { echo "testbed.sh: error: $*" >&2; exit 1; }
warn() { echo "testbed.sh: $*" >&2; }
log()  { [[ -n "${QUIET:-}" ]] || echo "testbed.sh: $*" >&2; }

usage() { sed -n '2,17p' "$SELF" | sed 's/^# \{0,1\}//'; }

need_root() { [[ $(id -u) -eq 0 ]] || die "must run as root (network namespaces, veth, tc)"; }

# ---- names ------------------------------------------------------------------
# Namespace i: ${P}i; its veth end inside the namespace: ${P}v<i>; the peer in
# the root namespace, enslaved to the bridge: ${P}h<i>; the bridge: ${P}br.
check_prefix() {
  [[ "$1" =~ ^[A-Za-z_][A-Za-z0-9_]{0,9}$ ]] || die "--name '$1': use 1-10 chars [A-Za-z0-9_] starting with a letter (interface names are limited to 15 chars)"
  [[ ! "$1" =~ [0-9]$ ]] || die "--name '$1' must not end in a digit (namespace i is named \${name}i)"
}
ns_name()   { echo "${PREFIX}$1"; }
ns_if()     { echo "${PREFIX}v$1"; }
host_if()   { echo "${PREFIX}h$1"; }
bridge_if() { echo "${PREFIX}br"; }
state_file(){ echo "$STATE_DIR/${PREFIX}.env"; }
ns_addr()   { echo "${SUBNET}.$(( $1 + 1 ))"; }

load_state() {
  local f; f="$(state_file)"
  [[ -f "$f" ]] || die "no testbed '$PREFIX' is up (no $f); run: $0 up --name $PREFIX ..."
  # shellcheck disable=SC1090
  source "$f"   # sets TB_NS TB_RATE TB_SUBNET TB_DELAY TB_BURST
  SUBNET="$TB_SUBNET"
}

# ---- netem probe ------------------------------------------------------------
# This project's kernels ship tbf/htb/pfifo but no sch_netem. Probe on a
# throwaway veth pair: modprobe (when present) and then the real tc call.
netem_available() {
  local a="sqzprb$$a" b="sqzprb$$b" ok=1
  a="${a:0:15}"; b="${b:0:15}"
  if command -v modprobe >/dev/null 2>&1; then modprobe sch_netem >/dev/null 2>&1 || true; fi
  ip link add "$a" type veth peer name "$b" >/dev/null 2>&1 || return 1
  NETEM_ERR="$(tc qdisc add dev "$a" root netem delay 1ms 2>&1)" || ok=0
  ip link del "$a" >/dev/null 2>&1 || true
  [[ $ok -eq 1 ]]
}

# ---- shaping ----------------------------------------------------------------
# shape DEV RATE DELAY BURST [NETNS]: tbf on DEV's egress. Both ends of every
# veth are shaped, so a namespace's uplink and downlink each run at RATE (a
# flow ns a -> ns b crosses a's tbf and then b's host-side tbf). BURST is the
# bucket: bytes that leave at once after an idle spell. A real NIC has none;
# tbf's default here (256kb) is 210 ms of a 10 Mbit/s link, enough to carry a
# small step's messages on tokens saved while the ranks computed.
shape() {
  local dev="$1" rate="$2" delay="$3" burst="$4" ns="${5:-}" tcx=(tc)
  [[ -n "$ns" ]] && tcx=(ip netns exec "$ns" tc)
  if [[ -n "$delay" ]]; then
    # Only reached where sch_netem exists (never on this project's kernels):
    # netem delays, its child tbf shapes. UNTESTED here for lack of netem.
    "${tcx[@]}" qdisc replace dev "$dev" root handle 1: netem delay "$delay"
    [[ "$rate" == none ]] || "${tcx[@]}" qdisc add dev "$dev" parent 1:1 handle 10: tbf rate "$rate" burst "$burst" latency 100ms
  elif [[ "$rate" != none ]]; then
    "${tcx[@]}" qdisc replace dev "$dev" root tbf rate "$rate" burst "$burst" latency 100ms
  fi
}

# ---- up -----------------------------------------------------------------------
cmd_up() {
  local n="" k=1 rate="" delay="" burst=256kb
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --ns) n="$2"; shift 2;;
      --ranks-per-ns) k="$2"; shift 2;;   # accepted for symmetry; `up` does not need it
      --rate) rate="$2"; shift 2;;
      --name) PREFIX="$2"; shift 2;;
      --subnet) SUBNET="$2"; shift 2;;
      --delay) delay="$2"; shift 2;;
      --burst) burst="$2"; shift 2;;
      -h|--help) usage; exit 0;;
      *) die "up: unknown argument '$1'";;
    esac
  done
  [[ "$n" =~ ^[0-9]+$ && "$n" -ge 1 && "$n" -le 200 ]] || die "up: --ns N (1..200) is required"
  [[ "$k" =~ ^[0-9]+$ && "$k" -ge 1 ]] || die "up: --ranks-per-ns must be >= 1"
  [[ -n "$rate" ]] || die "up: --rate RATE is required (e.g. 10gbit, 1gbit, 100mbit, 10mbit, or none)"
  [[ "$rate" == none || "$rate" =~ ^[0-9]+(\.[0-9]+)?([kKmMgGtT]?(bit|bps))$ ]] \
    || die "up: --rate '$rate' is not a tc rate (e.g. 10gbit, 1gbit, 100mbit, 10mbit) nor 'none'"
  [[ "$SUBNET" =~ ^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$ ]] || die "up: --subnet wants three octets, e.g. 10.213.0"
  [[ "$burst" =~ ^[0-9]+([kKmM]?(b|bit|kb|mb))?$ ]] || die "up: --burst '$burst' is not a tc size (e.g. 256kb, 16kb)"
  check_prefix "$PREFIX"
  need_root
  if [[ -n "$delay" ]]; then
    netem_available || die "up: --delay $delay: this kernel has no netem (sch_netem; 'tc qdisc add ... netem' says: ${NETEM_ERR:-failed}), so latency/loss cannot be emulated. Only rate shaping (tbf) is available; make a link fault with 'ip link set DEV down' or by killing a rank."
  fi
  [[ ! -f "$(state_file)" ]] || die "up: testbed '$PREFIX' is already up ($(state_file)); run: $0 down --name $PREFIX"
  ! ip link show "$(bridge_if)" >/dev/null 2>&1 || die "up: bridge $(bridge_if) already exists (leftover? run: $0 down --name $PREFIX)"
  # Read whole, then matched: `cmd | grep -q` under pipefail fails when grep exits first.
  local addrs; addrs=$(ip -4 -o addr show | awk '{print $4}')
  if grep -q "^${SUBNET//./\\.}\." <<<"$addrs"; then
    die "up: subnet ${SUBNET}.0/24 is already in use on this host (another testbed? pick --subnet)"
  fi

  mkdir -p "$STATE_DIR"
  # State first, so that `down` (also run on a failure below) finds everything.
  printf 'TB_NS=%q\nTB_RATE=%q\nTB_SUBNET=%q\nTB_DELAY=%q\nTB_BURST=%q\n' "$n" "$rate" "$SUBNET" "$delay" "$burst" > "$(state_file)"
  trap 'warn "up failed; tearing down"; QUIET=1 cmd_down --name "$PREFIX" || true' ERR

  local br; br="$(bridge_if)"
  ip link add name "$br" type bridge
  ip link set "$br" type bridge stp_state 0 forward_delay 0 2>/dev/null || true
  ip addr add "${SUBNET}.${BRIDGE_HOST}/24" dev "$br"
  ip link set "$br" up
  local i ns hv nv
  for ((i = 0; i < n; i++)); do
    ns="$(ns_name "$i")"; hv="$(host_if "$i")"; nv="$(ns_if "$i")"
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    # Only IPv4 on the testbed links, so MPI/UCX cannot wander onto link-local v6.
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 2>/dev/null || true
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.disable_ipv6=1 2>/dev/null || true
    ip link add "$hv" type veth peer name "$nv" netns "$ns"
    ip link set "$hv" master "$br"
    ip link set "$hv" up
    ip -n "$ns" addr add "$(ns_addr "$i")/24" dev "$nv"
    ip -n "$ns" link set "$nv" up
    shape "$hv" "$rate" "$delay" "$burst"
    shape "$nv" "$rate" "$delay" "$burst" "$ns"
  done
  trap - ERR
  log "up: '$PREFIX': $n namespaces ${PREFIX}0..${PREFIX}$((n - 1)) on bridge $br (${SUBNET}.${BRIDGE_HOST}/24), addresses ${SUBNET}.1..${SUBNET}.$n, rate $rate (burst $burst) on both ends of each veth${delay:+, delay $delay}"
}

# ---- down ---------------------------------------------------------------------
# Idempotent: works from the state file or, without one, from the names alone.
cmd_down() {
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --name) PREFIX="$2"; shift 2;;
      -h|--help) usage; exit 0;;
      *) die "down: unknown argument '$1'";;
    esac
  done
  check_prefix "$PREFIX"
  need_root
  local ns pids link
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^${PREFIX}[0-9]+$" || true); do
    # Rank processes still inside (e.g. after an interrupted run) keep the
    # namespace alive; end them by pid, TERM then KILL.
    pids="$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ' || true)"
    if [[ -n "${pids// /}" ]]; then
      warn "down: ending processes still in $ns: $pids"
      # shellcheck disable=SC2086
      kill -TERM $pids 2>/dev/null || true
      sleep 1
      pids="$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ' || true)"
      # shellcheck disable=SC2086
      [[ -z "${pids// /}" ]] || kill -KILL $pids 2>/dev/null || true
    fi
    ip netns del "$ns" 2>/dev/null || warn "down: could not delete netns $ns"
  done
  # Deleting a namespace deletes its veth end and so the peer; sweep leftovers.
  for link in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' | grep -E "^${PREFIX}h[0-9]+$" || true); do
    ip link del "$link" 2>/dev/null || true
  done
  if ip link show "$(bridge_if)" >/dev/null 2>&1; then ip link del "$(bridge_if)" || true; fi
  rm -f "$(state_file)"
  log "down: '$PREFIX' removed"
}

cmd_status() {
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --name) PREFIX="$2"; shift 2;;
      *) die "status: unknown argument '$1'";;
    esac
  done
  check_prefix "$PREFIX"
  if [[ -f "$(state_file)" ]]; then cat "$(state_file)"; else echo "no state file for '$PREFIX'"; fi
  ip -br addr show "$(bridge_if)" 2>/dev/null || echo "no bridge $(bridge_if)"
  local ns
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^${PREFIX}[0-9]+$" | sort -V || true); do
    echo "== $ns"; ip -n "$ns" -br addr show | grep -v '^lo'; ip netns exec "$ns" tc qdisc show | grep -v noqueue || true
  done
  echo "== root namespace (host-side veth ends)"
  tc qdisc show | grep -E "dev ${PREFIX}h[0-9]+ " || true
}

# ---- run ----------------------------------------------------------------------
free_port_in_ns() {
  # A port P such that P and P+1 are free in namespace $1 (sqzCommInitFromEnv
  # listens on MASTER_PORT+1; a torchrun-like store would take MASTER_PORT).
  if [[ -n "$PYTHON" ]]; then
    ip netns exec "$1" "$PYTHON" - <<'EOF'
import socket, random
for _ in range(200):
    p = random.randint(20000, 59000)
    ok = True
    for q in (p, p + 1):
        s = socket.socket()
        try:
            s.bind(("0.0.0.0", q))
        except OSError:
            ok = False
        finally:
            s.close()
    if ok:
        print(p); break
EOF
  else
    echo $(( 20000 + RANDOM % 39000 ))
  fi
}

cmd_run() {
  local n="" k=1 ucx_tls="" envs=() margs=() pml=ob1
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --ns) n="$2"; shift 2;;
      --pml) pml="$2"; shift 2;;
      --ranks-per-ns) k="$2"; shift 2;;
      --name) PREFIX="$2"; shift 2;;
      --ucx-tls) ucx_tls="$2"; shift 2;;
      --env) [[ "$2" == *=* ]] || die "run: --env wants NAME=VALUE"; envs+=("$2"); shift 2;;
      --mpirun-arg) margs+=("$2"); shift 2;;
      --) shift; break;;
      -h|--help) usage; exit 0;;
      *) die "run: unknown argument '$1' (the program goes after --)";;
    esac
  done
  [[ $# -ge 1 ]] || die "run: no program given (testbed.sh run ... -- PROGRAM ARGS...)"
  check_prefix "$PREFIX"
  need_root
  load_state
  [[ -n "$n" ]] || n="$TB_NS"
  [[ "$n" =~ ^[0-9]+$ && "$n" -ge 1 ]] || die "run: bad --ns '$n'"
  [[ "$k" =~ ^[0-9]+$ && "$k" -ge 1 ]] || die "run: bad --ranks-per-ns '$k'"
  [[ "$n" -le "$TB_NS" ]] || die "run: --ns $n but testbed '$PREFIX' has only $TB_NS namespaces"
  command -v mpirun >/dev/null || die "run: mpirun not found (apt-get install -y openmpi-bin)"

  # UCX transports. UCX_TLS is per process, not per peer, so it cannot say
  # "shared memory to my namespace-mates, TCP to everyone else". And UCX's
  # shared-memory transports do NOT stop at a network namespace: measured
  # here with UCX 1.13 (Open MPI pml ucx, UCX_TLS=sm,self, two ranks in
  # sqzns0 and sqzns1 on a 100mbit testbed) the peers connected over
  # sysv/cma shared memory at ~2 GB/s, bypassing the shaped links entirely
  # (also with a per-namespace hostname via unshare --uts). Hence:
  #  - ranks span several namespaces (N > 1): tcp,self, so every byte between
  #    namespaces crosses a shaped veth. The price: ranks that share a
  #    namespace (K > 1) talk over loopback TCP -- unshaped, as inside a real
  #    node, but slower than shared memory would be.
  #  - all ranks in one namespace (N = 1): tcp,sm,self (shared memory is
  #    the "intra-node" path and no link is involved).
  # --ucx-tls overrides; an sm-type transport with N > 1 draws a warning.
  if [[ -z "$ucx_tls" ]]; then
    if [[ "$n" -eq 1 ]]; then ucx_tls="tcp,sm,self"; else ucx_tls="tcp,self"; fi
  elif [[ "$n" -gt 1 && ",$ucx_tls," =~ ,(sm|shm|mm|posix|sysv|cma|knem|xpmem|all), ]]; then
    warn "run: WARNING: --ucx-tls $ucx_tls with $n namespaces: UCX shared memory reaches ranks in OTHER namespaces too and bypasses the shaped links"
  fi

  local br master_port np
  br="$(bridge_if)"
  np=$(( n * k ))
  master_port="${MASTER_PORT_OVERRIDE:-$(free_port_in_ns "$(ns_name 0)")}"
  [[ -n "$master_port" ]] || die "run: could not find a free port in $(ns_name 0)"

  export SQZ_NETBENCH_PREFIX="$PREFIX" SQZ_NETBENCH_RANKS_PER_NS="$k" SQZ_NETBENCH_SUBNET="$SUBNET"
  export SQZ_NETBENCH_UCX_TLS="$ucx_tls" SQZ_NETBENCH_NUM_NS="$n"
  export MASTER_ADDR; MASTER_ADDR="$(ns_addr 0)"
  export MASTER_PORT="$master_port"
  # A shared secret for sqz's bootstrap, unless the caller has one.
  if [[ -z "${SQZ_SECRET:-}" ]]; then
    export SQZ_SECRET; SQZ_SECRET="netbench-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
  fi
  # PMIx server (in mpirun, root namespace) must listen on the bridge, or the
  # ranks inside namespaces cannot reach it (loopback is per namespace).
  export PMIX_MCA_ptl_tcp_if_include="$br"

  local xs=(-x SQZ_NETBENCH_PREFIX -x SQZ_NETBENCH_RANKS_PER_NS -x SQZ_NETBENCH_SUBNET
            -x SQZ_NETBENCH_UCX_TLS -x SQZ_NETBENCH_NUM_NS -x MASTER_ADDR -x MASTER_PORT -x SQZ_SECRET)
  local e
  for e in "${envs[@]+"${envs[@]}"}"; do
    export "${e%%=*}=${e#*=}"; xs+=(-x "${e%%=*}")
  done

  # pml ob1 + btl tcp,self: MPI point-to-point goes over TCP on the testbed
  # subnet (no vader shared memory, no pml ucx), so MPI's traffic crosses the
  # shaped links. Intra-namespace MPI traffic also uses TCP (over loopback).
  # --pml ucx instead: MPI over UCX, steered by UCX_TLS/UCX_NET_DEVICES as
  # above (pml_ucx_tls/devices "any" so it does not refuse TCP-only UCX).
  local pmlargs=(--mca pml ob1)
  case "$pml" in
    ob1) ;;
    ucx) pmlargs=(--mca pml ucx --mca pml_ucx_tls any --mca pml_ucx_devices any);;
    *) die "run: --pml wants ob1 or ucx";;
  esac
  # shellcheck disable=SC2054  # "tcp,self" is one word
  local cmd=(mpirun --allow-run-as-root --oversubscribe --bind-to none -np "$np"
             "${pmlargs[@]}" --mca btl tcp,self
             --mca btl_tcp_if_include "${SUBNET}.0/24"
             --mca oob_tcp_if_include "$br"
             --mca btl_base_warn_component_unused 0
             "${xs[@]}" "${margs[@]+"${margs[@]}"}"
             "$HERE/rank_wrapper.sh" "$@")
  log "run: $np ranks ($n ns x $k), MASTER_ADDR=$MASTER_ADDR MASTER_PORT=$MASTER_PORT UCX_TLS=$ucx_tls"
  [[ -z "${SQZ_NETBENCH_VERBOSE:-}" ]] || log "run: PMIX_MCA_ptl_tcp_if_include=$br ${cmd[*]}"
  # mpirun runs in the background and we `wait` for it, so that a TERM/INT
  # sent to this script is acted on at once (bash defers traps while a
  # foreground child runs): the trap forwards TERM to mpirun (which ends the
  # ranks), and `with`'s EXIT trap then tears the testbed down.
  trap 'on_signal 130' INT
  trap 'on_signal 143' TERM
  "${cmd[@]}" &
  MPIRUN_PID=$!
  local rc=0
  wait "$MPIRUN_PID" || rc=$?
  MPIRUN_PID=""
  return "$rc"
}

MPIRUN_PID=""
on_signal() {
  trap - INT TERM
  if [[ -n "$MPIRUN_PID" ]] && kill -0 "$MPIRUN_PID" 2>/dev/null; then
    warn "signal: stopping mpirun (pid $MPIRUN_PID)"
    kill -TERM "$MPIRUN_PID" 2>/dev/null || true
    local i
    for ((i = 0; i < 50; i++)); do kill -0 "$MPIRUN_PID" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$MPIRUN_PID" 2>/dev/null || true
  fi
  exit "$1"
}

# ---- with ---------------------------------------------------------------------
cmd_with() {
  local upargs=() runargs=() prog=()
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --ns) upargs+=("$1" "$2"); runargs+=("$1" "$2"); shift 2;;
      --ranks-per-ns) runargs+=("$1" "$2"); shift 2;;
      --name) PREFIX="$2"; shift 2;;
      --rate|--subnet|--delay|--burst) upargs+=("$1" "$2"); shift 2;;
      --ucx-tls|--env|--mpirun-arg|--pml) runargs+=("$1" "$2"); shift 2;;
      --) shift; prog=("$@"); break;;
      -h|--help) usage; exit 0;;
      *) die "with: unknown argument '$1' (the program goes after --)";;
    esac
  done
  [[ ${#prog[@]} -ge 1 ]] || die "with: no program given (testbed.sh with ... -- PROGRAM ARGS...)"
  check_prefix "$PREFIX"
  need_root
  # Cleanup whatever happens: normal exit, error, Ctrl-C, kill.
  trap 'rc=$?; trap - EXIT INT TERM; QUIET=1 cmd_down --name "$PREFIX" || true; exit $rc' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  cmd_up --name "$PREFIX" "${upargs[@]}"
  # No `|| rc=$?` here: that would switch off set -e inside cmd_run. A failing
  # mpirun exits the script with its status and the EXIT trap tears down.
  cmd_run --name "$PREFIX" "${runargs[@]+"${runargs[@]}"}" -- "${prog[@]}"
}

# ---- measure --------------------------------------------------------------------
cmd_measure() {
  local from=0 to=1 secs=5 rate=""
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --name) PREFIX="$2"; shift 2;;
      --from) from="$2"; shift 2;;
      --to) to="$2"; shift 2;;
      --seconds) secs="$2"; shift 2;;
      --rate) rate="$2"; shift 2;;
      --subnet) SUBNET="$2"; shift 2;;
      -h|--help) usage; exit 0;;
      *) die "measure: unknown argument '$1'";;
    esac
  done
  need_root
  [[ -n "$PYTHON" ]] || die "measure: python3 not found (apt-get install -y python3)"
  if [[ -n "$rate" ]]; then
    # Temporary 2-namespace testbed of its own, torn down on any exit.
    [[ "$PREFIX" != "$DEFAULT_PREFIX" ]] || PREFIX=sqzmeas
    [[ "$SUBNET" != "$DEFAULT_SUBNET" ]] || SUBNET=10.213.250
    check_prefix "$PREFIX"
    trap 'rc=$?; trap - EXIT INT TERM; QUIET=1 cmd_down --name "$PREFIX" || true; exit $rc' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    QUIET=1 cmd_up --name "$PREFIX" --ns 2 --rate "$rate" --subnet "$SUBNET"
    from=0; to=1
  fi
  check_prefix "$PREFIX"
  load_state
  [[ "$from" -lt "$TB_NS" && "$to" -lt "$TB_NS" && "$from" -ne "$to" ]] || die "measure: --from/--to must be distinct namespaces < $TB_NS"
  local port=5201 out rfile
  rfile="$(mktemp)"
  ip netns exec "$(ns_name "$to")" "$PYTHON" "$HERE/tcp_probe.py" recv --port "$port" --seconds "$secs" > "$rfile" &
  local rpid=$!
  sleep 0.5
  ip netns exec "$(ns_name "$from")" "$PYTHON" "$HERE/tcp_probe.py" send --host "$(ns_addr "$to")" --port "$port" --seconds "$secs" >/dev/null
  wait "$rpid" || true
  out="$(cat "$rfile")"; rm -f "$rfile"
  [[ -n "$out" ]] || die "measure: receiver reported nothing"
  echo "measure: ${PREFIX}${from} -> ${PREFIX}${to}  configured ${TB_RATE}  measured ${out}"
}

# ---- main -----------------------------------------------------------------------
PREFIX="$DEFAULT_PREFIX"
SUBNET="$DEFAULT_SUBNET"
sub="${1:-}"; [[ $# -gt 0 ]] && shift
case "$sub" in
  up) cmd_up "$@";;
  down) cmd_down "$@";;
  status) cmd_status "$@";;
  run) cmd_run "$@";;
  with) cmd_with "$@";;
  measure) cmd_measure "$@";;
  -h|--help|help|"") usage;;
  *) die "unknown subcommand '$sub' (up, down, status, run, with, measure)";;
esac
