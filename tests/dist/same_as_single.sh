#!/usr/bin/env bash
# The GPT example data parallel on RANKS ranks against one process on the
# same global batch: the final validation loss must be the same (to the 4
# decimals it prints).
#
#   same_as_single.sh MPIEXEC RANKS PROGRAM ARGS...
set -uo pipefail
mpiexec="$1" ranks="$2" program="$3"
shift 3
single=$("$program" "$@" | grep -o "final val loss [0-9.]*") || { echo "same_as_single.sh: the single run failed"; exit 1; }
spread=$("$mpiexec" -np "$ranks" --oversubscribe "$program" "$@" --distributed | grep -o "final val loss [0-9.]*") ||
    { echo "same_as_single.sh: the distributed run failed"; exit 1; }
echo "one process: $single; $ranks ranks: $spread"
[ "$single" = "$spread" ] || { echo "same_as_single.sh: FAILED: they differ"; exit 1; }
