#!/usr/bin/env bash
# Single-node SLURM cluster on localhost for CI (Debian 12, root, no systemd needed).
# Installs if missing, configures, starts munged + slurmctld + slurmd (+ mariadbd + slurmdbd
# when LOCAL_SLURM_ACCOUNTING=1, so sacct works) and waits for the node to be idle.
# Idempotent. Stop with scripts/local_slurm/stop.sh (kills only what has a pid file in $BASE/run).
set -euo pipefail
BASE=${LOCAL_SLURM_DIR:-/tmp/local-slurm}; ACCT=${LOCAL_SLURM_ACCOUNTING:-0}
TIMEOUT=${LOCAL_SLURM_TIMEOUT:-60}; DB_PORT=${LOCAL_SLURM_DB_PORT:-3399}
CLUSTER=localci CONF=/etc/slurm/slurm.conf RUN=$BASE/run LOG=$BASE/log
log() { echo "[local-slurm] $*" >&2; }
die() { log "ERROR: $*"; tail -n 15 "$LOG"/*.log >&2 2>/dev/null || true; exit 1; }
dead() { ! kill -0 "$1" 2>/dev/null || [ "$(cut -d' ' -f3 /proc/"$1"/stat 2>/dev/null)" = Z ]; }
alive() { local p; p=$(cat "$RUN/$1.pid" 2>/dev/null) && [ -n "$p" ] && ! dead "$p"; }
waitfor() { local n=$(($1 * 5)); shift; until "$@" >/dev/null 2>&1; do n=$((n - 1)); [ $n -gt 0 ] || return 1; sleep 0.2; done; }
# daemons get their own session and must not hold the caller's stdout/stderr open
bg() { local name=$1; shift; setsid "$@" </dev/null >>"$LOG/$name.out" 2>&1 & }
[ "$(id -u)" = 0 ] || die "must run as root"

# 1. packages; a temporary policy-rc.d keeps maintainer scripts from starting daemons
pkgs="munge slurmctld slurmd slurm-client"; [ "$ACCT" = 1 ] && pkgs="$pkgs slurmdbd mariadb-server"
missing=""; for p in $pkgs; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"; done
if [ -n "$missing" ]; then
  log "installing:$missing"; t0=$SECONDS; pol=0
  [ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; pol=1; }
  rc=0; { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null; } || rc=$?
  [ $pol = 1 ] && rm -f /usr/sbin/policy-rc.d
  [ $rc = 0 ] || die "apt-get failed"; log "installed in $((SECONDS - t0))s"
fi
mkdir -p "$RUN" "$LOG" "$BASE/state" "$BASE/spool" /etc/slurm /run/munge

# 2. munge: reuse a working munged on the default socket, else start one as root
#    (--force: the Debian key is owned by 'munge', root-run munged refuses it otherwise)
if ! munge -n </dev/null >/dev/null 2>&1; then
  [ -s /etc/munge/munge.key ] || { mkdir -p /etc/munge; mungekey -c -k /etc/munge/munge.key; chmod 400 /etc/munge/munge.key; }
  munged --force --key-file=/etc/munge/munge.key --pid-file="$RUN/munged.pid" --log-file="$LOG/munged.log" \
    --seed-file="$BASE/munged.seed" </dev/null >>"$LOG/munged.out" 2>&1 || die "munged failed"
  waitfor 10 sh -c 'munge -n </dev/null | unmunge' || die "munge not working"
  log "munged started (pid $(cat "$RUN/munged.pid"))"
fi

# 3. slurm.conf: node line from `slurmd -C`, RealMemory minus 5% headroom, no cgroups
NODE=$(slurmd -C | head -n 1); MEM=$(sed 's/.*RealMemory=\([0-9]*\).*/\1/' <<<"$NODE")
NODE=$(sed "s/RealMemory=[0-9]*/RealMemory=$((MEM - MEM / 20))/" <<<"$NODE"); HOST=$(hostname -s)
if [ "$ACCT" = 1 ]; then ACCT_CONF="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
JobAcctGatherType=jobacct_gather/linux"
else ACCT_CONF="AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none"; fi
NEW_CONF="# managed by start_local_slurm
ClusterName=$CLUSTER
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$BASE/state
SlurmdSpoolDir=$BASE/spool
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=512
$ACCT_CONF
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
MinJobAge=600
KillWait=5
$NODE NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP"
if [ "$(cat "$CONF" 2>/dev/null)" != "$NEW_CONF" ]; then
  [ -e "$CONF" ] && ! grep -q '^# managed by start_local_slurm' "$CONF" && { cp -n "$CONF" "$CONF.orig" || true; }
  for d in slurmd slurmctld; do   # config changed under running daemons: restart them
    if alive $d; then log "config changed, restarting $d"; p=$(cat "$RUN/$d.pid"); kill "$p"; waitfor 15 dead "$p" || kill -9 "$p"; fi
  done
  printf '%s\n' "$NEW_CONF" >"$CONF"
fi

# 4. optional accounting: private mariadbd on 127.0.0.1:$DB_PORT + slurmdbd
if [ "$ACCT" = 1 ]; then
  SOCK=$RUN/mysqld.sock
  if ! alive mysqld; then
    [ -d "$BASE/mysql/mysql" ] || mariadb-install-db --no-defaults --user=root --datadir="$BASE/mysql" \
      --auth-root-authentication-method=socket --skip-test-db >"$LOG/mysql_install.log" 2>&1 || die "mariadb-install-db failed"
    bg mysqld mariadbd --no-defaults --user=root --datadir="$BASE/mysql" --socket="$SOCK" --pid-file="$RUN/mysqld.pid" \
      --bind-address=127.0.0.1 --port="$DB_PORT" --log-error="$LOG/mysqld.log" --innodb-buffer-pool-size=64M --innodb-use-native-aio=0
    waitfor 30 mariadb --no-defaults -S "$SOCK" -uroot -e 'select 1' || die "mariadbd did not come up"
    mariadb --no-defaults -S "$SOCK" -uroot -e "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurmci';
      GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
    log "mariadbd started (pid $(cat "$RUN/mysqld.pid"))"
  fi
  printf '%s\n' AuthType=auth/munge DbdHost=localhost DbdAddr=127.0.0.1 SlurmUser=root "LogFile=$LOG/slurmdbd.log" \
    "PidFile=$RUN/slurmdbd.pid" StorageType=accounting_storage/mysql StorageHost=127.0.0.1 "StoragePort=$DB_PORT" \
    StorageUser=slurm StoragePass=slurmci StorageLoc=slurm_acct_db >/etc/slurm/slurmdbd.conf
  chmod 600 /etc/slurm/slurmdbd.conf
  if ! alive slurmdbd; then bg slurmdbd slurmdbd -D; waitfor 30 sacctmgr -n list cluster || die "slurmdbd not up"; log "slurmdbd started"; fi
  # register the cluster BEFORE slurmctld starts (else slurmctld floods slurmdbd and sacctmgr hangs)
  clusters=$(sacctmgr -n -P list cluster format=cluster)
  grep -qx "$CLUSTER" <<<"$clusters" || timeout 30 sacctmgr -i add cluster "$CLUSTER" >/dev/null || die "sacctmgr add cluster failed"
fi

# 5. slurmctld + slurmd in foreground mode (-D) under setsid; they write their pid files
alive slurmctld || { bg slurmctld slurmctld -D -f "$CONF"; log "slurmctld started"; }
waitfor 30 scontrol ping || die "slurmctld not responding"
alive slurmd || { bg slurmd slurmd -D -f "$CONF"; log "slurmd started"; }

# 6. wait until the node is idle
t0=$SECONDS; ms0=$(date +%s%3N)
until [ "$(sinfo -h -n "$HOST" -o %T 2>/dev/null)" = idle ]; do
  [ $((SECONDS - t0)) -lt "$TIMEOUT" ] || { sinfo -N -l >&2 || true; die "node not idle after ${TIMEOUT}s"; }
  case "$(sinfo -h -n "$HOST" -o %T 2>/dev/null)" in down*|drain*) scontrol update nodename="$HOST" state=resume 2>/dev/null || true ;; esac
  sleep 0.5
done
log "node $HOST idle after $(($(date +%s%3N) - ms0))ms (config $CONF, logs in $LOG)"
