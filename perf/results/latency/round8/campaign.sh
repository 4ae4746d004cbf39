#!/bin/bash
# Round 8, one quiet.sh command: the probe (main's library, the branch's, the branch's with the remote
# spin off), then the acceptance campaign (loopback.sh, the branch's build and main's alternating, 3
# launches each), as round 7.
# usage (under /work/tools/quiet.sh): campaign.sh NEW_BUILD MAIN_BUILD PROBE_NEW PROBE_MAIN
here=$(cd "$(dirname "$0")" && pwd)
"$here/probe.sh" "$here" main="$4" new="$3" nospin="$3:SQZ_SHM_REMOTE_SPIN_POLLS=1"
"$here/../loopback.sh" "$here" default="$1" main="$2"
