#!/usr/bin/env bash
# The failing-rank test: a 3-rank job whose rank 2 exits (or stops answering)
# at step 5 must end within the communicator's timeout, with a non-zero exit
# status and a message saying what happened. mpirun ends the job when a rank
# exits without MPI_Finalize; a rank that stops answering makes the others'
# blocking collective end the job at the timeout (stall), or their
# asynchronous one fail with NB_ERR_DIST there (stall-async).
#
#   failure.sh MPIEXEC DIST_FAILURE exit|stall|stall-async TIMEOUT_SECONDS
set -uo pipefail
mpiexec="$1" program="$2" mode="$3" timeout="$4"
log="$(mktemp)"
start=$(date +%s.%N)
# the outer limit only guards against a hang of this test itself
command timeout $((timeout * 6 + 60)) "$mpiexec" -np 3 --oversubscribe "$program" "$mode" "$timeout" >"$log" 2>&1
status=$?
elapsed=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
cat "$log"
echo "failure.sh: $mode: exit status $status after $elapsed s (timeout $timeout s)"
fail() { echo "failure.sh: FAILED: $1"; rm -f "$log"; exit 1; }
[ "$status" -ne 0 ] || fail "the job succeeded"
[ "$status" -ne 124 ] || fail "the job hung"
# start-up and teardown add seconds on a loaded machine: the job's wall time
# only has to be far from a hang, while the surviving ranks' own collective
# must fail at the timeout itself
awk -v e="$elapsed" -v t="$timeout" 'BEGIN { exit !(e < t + 60) }' || fail "took $elapsed s, past the timeout $timeout s"
if [ "$mode" = stall ]; then
    grep -q "nb_dist_all_reduce: rank [01] waited $timeout s .* ending the job (MPI_Abort)" "$log" ||
        fail "no timeout message from the surviving ranks' watchdog"
elif [ "$mode" = stall-async ]; then
    grep -q "NB_ERR_DIST: nb_dist_all_reduce: rank [01] waited $timeout s" "$log" ||
        fail "no NB_ERR_DIST timeout message from the surviving ranks"
    for waited in $(grep -o "failed after [0-9.]* s" "$log" | awk '{print $3}'); do
        awk -v w="$waited" -v t="$timeout" 'BEGIN { exit !(w >= t && w < t + 2) }' ||
            fail "a surviving rank's collective failed after $waited s, not at the timeout $timeout s"
    done
else
    grep -qiE "rank 2|exited|terminated|abort" "$log" || fail "no message naming the failed rank"
fi
rm -f "$log"
echo "failure.sh: $mode: passed"
