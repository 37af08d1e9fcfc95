#!/usr/bin/env bash
# Stops only the daemons scripts/local_slurm/start.sh started (pid files in $LOCAL_SLURM_DIR/run).
set -uo pipefail
RUN=${LOCAL_SLURM_DIR:-/tmp/local-slurm}/run
# dead = gone, or a zombie waiting for PID 1 to reap it
gone() { ! kill -0 "$1" 2>/dev/null || [ "$(cut -d' ' -f3 /proc/"$1"/stat 2>/dev/null)" = Z ]; }
if [ -s "$RUN/slurmctld.pid" ]; then   # cancel leftover jobs so no slurmstepd outlives slurmd
  ids=$(timeout 10 squeue -h -o %A 2>/dev/null | sort -u); [ -n "$ids" ] && timeout 10 scancel $ids 2>/dev/null; sleep 1
fi
for d in slurmd slurmctld slurmdbd mysqld munged; do
  f=$RUN/$d.pid; [ -s "$f" ] || continue
  pid=$(cat "$f"); comm=$(cat /proc/"$pid"/comm 2>/dev/null || true)
  case "$d:$comm" in slurmd:slurmd|slurmctld:slurmctld|slurmdbd:slurmdbd|mysqld:mariadbd|mysqld:mysqld|munged:munged) ;;
    *) echo "[local-slurm] $d: pid $pid not running (or reused), skipping"; rm -f "$f"; continue;; esac
  kill -TERM "$pid"
  for _ in $(seq 100); do gone "$pid" && break; sleep 0.1; done
  gone "$pid" || kill -KILL "$pid"
  rm -f "$f"; echo "[local-slurm] stopped $d (pid $pid)"
done
