#!/usr/bin/env bash
# Stop the test cluster started by start-local-slurm.sh.
#
#   tests/slurm/stop-local-slurm.sh [STATE_DIR]       (or SLURM_TEST_DIR=STATE_DIR)
#
# Only the processes whose PIDs start-local-slurm.sh recorded under STATE_DIR are
# signalled (never "every slurmd on the box"): first jobs still in the cluster are
# cancelled, then slurmd, slurmctld and munged get SIGTERM, a bounded wait, and SIGKILL
# if they are still there. Safe to run twice, and on a directory where nothing runs.
set -euo pipefail

STATE_DIR=${1:-${SLURM_TEST_DIR:-/tmp/slurm-test}}
TERM_TIMEOUT=${SLURM_TEST_STOP_TIMEOUT:-15}
export PATH="$PATH:/usr/sbin:/sbin"

log() { echo "[stop-local-slurm] $*" >&2; }

if [[ ! -d $STATE_DIR ]]; then
	log "nothing to stop: $STATE_DIR does not exist"
	exit 0
fi
export SLURM_CONF="$STATE_DIR/slurm.conf"

# pid_of NAME: the recorded PID, if it still belongs to a process called NAME (a stale
# file whose PID was reused by something else must not get that process killed).
pid_of() {
	local pidfile="$STATE_DIR/$1.pid" pid
	[[ -s $pidfile ]] || return 1
	pid=$(tr -dc '0-9' <"$pidfile")
	[[ -n $pid && -r /proc/$pid/comm ]] || return 1
	[[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$1" ]] || return 1
	echo "$pid"
}

# running PID: the process exists and is not a zombie (in a container, PID 1 may never
# reap the detached daemons, and kill -0 succeeds on a zombie).
running() {
	[[ -r /proc/$1/stat ]] || return 1
	[[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) != Z ]]
}

# Cancel this cluster's jobs while slurmctld can still do it, so no slurmstepd and no
# job processes outlive the daemons. Bounded: a wedged controller is simply killed below.
if pid_of slurmctld >/dev/null && [[ -f $SLURM_CONF ]] && command -v scancel >/dev/null; then
	if [[ -n $(timeout 10 squeue -h -t running,pending,completing -o %i 2>/dev/null || true) ]]; then
		log "cancelling jobs still in the cluster"
		timeout 10 scancel --full --user="$(id -un)" >/dev/null 2>&1 || true
		for _ in $(seq 1 20); do
			[[ -z $(timeout 10 squeue -h -t running,pending,completing -o %i 2>/dev/null || true) ]] && break
			sleep 0.5
		done
	fi
fi

# slurmd first (it reports to slurmctld), munged last (the others authenticate via it).
status=0
for name in slurmd slurmctld munged; do
	if pid=$(pid_of "$name"); then
		log "stopping $name (PID $pid)"
		kill -TERM "$pid" 2>/dev/null || true
		deadline=$((SECONDS + TERM_TIMEOUT))
		while running "$pid" && ((SECONDS < deadline)); do
			sleep 0.2
		done
		if running "$pid"; then
			log "$name (PID $pid) ignored SIGTERM for ${TERM_TIMEOUT}s; sending SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
			for _ in $(seq 1 25); do
				running "$pid" || break
				sleep 0.2
			done
		fi
		if running "$pid"; then
			log "ERROR: $name (PID $pid) is still running"
			status=1
			continue
		fi
	fi
	rm -f "$STATE_DIR/$name.pid"
done
rm -f "$STATE_DIR/munge/munged.pid"
exit "$status"
