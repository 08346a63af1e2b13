#!/usr/bin/env bash
# Resuming is bit-exact: a run in one go, and the same run stopped after
# step STOP, saved, and resumed in a new process, must end with the same
# checkpoint, byte for byte (model, optimizer state, generators, step).
#
#   resume.sh STOP PROGRAM ARGS...
set -uo pipefail
stop="$1" program="$2"
shift 2
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
"$program" "$@" --save "$dir/straight.safetensors" >"$dir/straight.log" 2>&1 || { cat "$dir/straight.log"; exit 1; }
"$program" "$@" --stop-at "$stop" --save "$dir/half.safetensors" >"$dir/half.log" 2>&1 || { cat "$dir/half.log"; exit 1; }
"$program" "$@" --resume "$dir/half.safetensors" --save "$dir/resumed.safetensors" >"$dir/resumed.log" 2>&1 ||
    { cat "$dir/resumed.log"; exit 1; }
grep "resumed from" "$dir/resumed.log"
if cmp "$dir/straight.safetensors" "$dir/resumed.safetensors"; then
    echo "resume.sh: stopped after step $stop and resumed: the final checkpoint equals the straight run's," \
         "$(stat -c %s "$dir/straight.safetensors") bytes"
else
    echo "resume.sh: FAILED: the resumed run ended elsewhere"; exit 1
fi
