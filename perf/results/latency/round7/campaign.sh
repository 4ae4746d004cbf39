#!/bin/bash
# Round 7, one quiet.sh command: the acceptance campaign (loopback.sh, new
# build and main's alternating, 3 launches each), then the probe.
# usage (under /work/tools/quiet.sh): campaign.sh NEW_BUILD MAIN_BUILD ONEMODE_BINARY
here=$(cd "$(dirname "$0")" && pwd)
"$here/../loopback.sh" "$here" default="$1" main="$2"
"$here/probe.sh" "$here" "$3"
