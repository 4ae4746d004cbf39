#!/usr/bin/env bash
# Launched by `testbed.sh run` through mpirun, once per rank, in the root
# namespace: sets the per-rank environment and execs PROGRAM inside namespace
# ${SQZ_NETBENCH_PREFIX}$((rank / SQZ_NETBENCH_RANKS_PER_NS)).
#
# Each rank gets (on top of what mpirun passes):
#   SQZ_SOCKET_IFNAME  = ${PREFIX}v<ns>  the namespace's shaped veth (sqz bootstrap)
#   UCX_NET_DEVICES    = ${PREFIX}v<ns>  UCX's TCP transport uses that interface
#   UCX_TLS            = $SQZ_NETBENCH_UCX_TLS (tcp,self when ranks span several namespaces;
#                        tcp,sm,self when all ranks are in one; see testbed.sh run)
#   MASTER_ADDR/PORT   = rank 0's namespace address and a free port (set by testbed.sh)
#   SQZ_NETBENCH_NS    = this rank's namespace index
#   SQZ_NETBENCH_ADDR  = this rank's namespace address
#   SQZ_NETBENCH_IFNAME= the veth name again
#   SQZ_NODE_ID        = <hostname>/${PREFIX}<ns>: the namespace is the node. sqz's own
#                        node id includes the namespace's inode, which a testbed
#                        brought up again may not get back: the tuner's profile
#                        (keyed by the node ids) then no longer matches and the
#                        next job calibrates again, as no job on a cluster would.
set -euo pipefail
rank="${OMPI_COMM_WORLD_RANK:-${PMIX_RANK:-}}"
[[ -n "$rank" ]] || { echo "rank_wrapper.sh: no OMPI_COMM_WORLD_RANK (run through testbed.sh run)" >&2; exit 2; }
: "${SQZ_NETBENCH_PREFIX:?}" "${SQZ_NETBENCH_RANKS_PER_NS:?}" "${SQZ_NETBENCH_SUBNET:?}"
ns=$(( rank / SQZ_NETBENCH_RANKS_PER_NS ))
ifname="${SQZ_NETBENCH_PREFIX}v${ns}"
export SQZ_NETBENCH_NS="$ns"
export SQZ_NETBENCH_ADDR="${SQZ_NETBENCH_SUBNET}.$(( ns + 1 ))"
export SQZ_NETBENCH_IFNAME="$ifname"
export SQZ_SOCKET_IFNAME="$ifname"
SQZ_NODE_ID="$(hostname)/${SQZ_NETBENCH_PREFIX}${ns}"
export SQZ_NODE_ID
export UCX_NET_DEVICES="$ifname"
export UCX_TLS="${SQZ_NETBENCH_UCX_TLS:-tcp,self}"
exec ip netns exec "${SQZ_NETBENCH_PREFIX}${ns}" "$@"
