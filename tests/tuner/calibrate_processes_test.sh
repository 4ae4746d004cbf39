#!/bin/sh
# sqz_calibrate with ranks as processes under mpirun (quick mode, loopback):
# the profile lands in the cache directory under the fingerprint a
# communicator of these ranks computes, and loads there (calibrated_profile_check).
#   calibrate_processes_test.sh MPIRUN_PREFIX... -- SQZ_CALIBRATE CHECKER NP
set -eu
launcher=""
while [ "$1" != "--" ]; do launcher="$launcher $1"; shift; done
shift
calibrate=$1 checker=$2 np=$3
dir=$(mktemp -d /tmp/sqz_calibrate_test.XXXXXX)
trap 'rm -rf "$dir"' EXIT
export XDG_CACHE_HOME="$dir"
unset SQZ_PROFILE || true
# shellcheck disable=SC2086
$launcher -np "$np" "$calibrate" --quick --no-gpu
ls "$dir/sqz"
[ "$(ls "$dir/sqz" | wc -l)" -eq 1 ] || { echo "expected one profile file"; exit 1; }
"$checker" "$np"
