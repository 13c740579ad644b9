#!/usr/bin/env bash
# A three-node Slurm cluster on this machine, for as long as one command runs:
#
#   tests/cluster/cluster.sh COMMAND [ARGS...]
#
# Each node is a network namespace (parc-node1..3, 10.253.77.11-13 on a bridge whose host
# side is 10.253.77.1) with a UTS namespace of its own, so gethostname() says parc-node1
# there, as on a real node. munged and slurmctld run here, one slurmd per node (entered
# with nsenter: `ip netns exec` would remount /sys). COMMAND runs here with SLURM_CONF
# set, and with PARC_CLUSTER_DIR (a temp dir) and PARC_CLUSTER_NODES (the node names)
# exported. Everything made (daemons, job processes inside the namespaces, namespaces,
# veths, bridge, /etc/hosts lines, temp dir) is removed when COMMAND ends, fails or the
# script is signalled; leftovers of a run that was SIGKILLed are removed at the next start.
#
# Needs root (CI runs as root) and the slurm-wlm and munge packages (scripts/install-deps.sh).
# Exit status: COMMAND's; 77 when the cluster cannot be made here (not root, no netns).
set -euo pipefail

nodes=(parc-node1 parc-node2 parc-node3)
subnet=10.253.77
bridge=parcbr77
hosts_marker="# parc cluster suite"
lock=/run/parc-cluster.lock

if (($# == 0)); then
  echo "usage: $0 COMMAND [ARGS...]" >&2
  exit 2
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "cluster: needs root (network namespaces, Slurm daemons); skipped" >&2
  exit 77
fi
for tool in slurmctld slurmd munged srun ip nsenter unshare; do
  if ! command -v "$tool" >/dev/null; then
    echo "cluster: $tool is missing (scripts/install-deps.sh installs slurm-wlm and munge); skipped" >&2
    exit 77
  fi
done

# One cluster at a time on this machine: the names and the subnet are fixed.
exec 9>"$lock"
flock -w 600 9

dir=""
pids=()

log() { echo "cluster: $*" >&2; }

# Running, not a zombie (kill -0 succeeds on a child not reaped yet).
alive() {
  local state
  state=$(awk '{ sub(/.*\) /, ""); print $1 }' "/proc/$1/stat" 2>/dev/null) || return 1
  [[ -n "$state" && "$state" != Z ]]
}

remove_hosts_lines() {
  # In place (same inode): /etc/hosts may be a bind mount that sed -i cannot replace.
  if grep -q "$hosts_marker" /etc/hosts 2>/dev/null; then
    local kept
    kept=$(grep -v "$hosts_marker" /etc/hosts || true)
    printf '%s\n' "$kept" >/etc/hosts
  fi
}

# Removes what this script makes, by name; safe to run when nothing (or only part) exists.
teardown() {
  set +e
  local node pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  for node in "${nodes[@]}"; do
    if [[ -e /var/run/netns/$node ]]; then
      # Job processes (slurmstepd daemonizes, so it is no child of ours): whatever still
      # runs in one of our namespaces, by pid.
      for pid in $(ip netns pids "$node" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
      ip netns del "$node" 2>/dev/null
    fi
    ip link del "veth-$node" 2>/dev/null
  done
  ip link del "$bridge" 2>/dev/null
  remove_hosts_lines
  if [[ -n "$dir" && -d "$dir" ]]; then
    for node in "${nodes[@]}"; do umount "$dir/uts.$node" 2>/dev/null; done
    rm -rf "$dir"
  fi
}

# Leftovers of a run that could not clean up (SIGKILL): its namespaces, bridge, hosts
# lines and temp dirs (their UTS namespace files are mounted).
stale_dirs=$(find /tmp -maxdepth 1 -name 'parc-cluster.*' -type d 2>/dev/null || true)
for stale in $stale_dirs; do
  pidfile_pids=$(cat "$stale"/*.pid 2>/dev/null || true)
  for pid in $pidfile_pids; do kill -KILL "$pid" 2>/dev/null || true; done
  for node in "${nodes[@]}"; do umount "$stale/uts.$node" 2>/dev/null || true; done
  rm -rf "$stale"
done
teardown
set -e

status=1
command_pid=""
on_exit() {
  trap - EXIT INT TERM HUP
  set +e
  if [[ -n "$command_pid" ]]; then
    kill -TERM "$command_pid" 2>/dev/null
    wait "$command_pid" 2>/dev/null
  fi
  teardown
  exit "$status"
}
trap 'status=$?; on_exit' EXIT
trap 'status=143; on_exit' TERM
trap 'status=130; on_exit' INT
trap 'status=129; on_exit' HUP

dir=$(mktemp -d /tmp/parc-cluster.XXXXXX)
chmod 755 "$dir"

if ! ip link add "$bridge" type bridge 2>/dev/null; then
  log "cannot create network devices here; skipped"
  status=77
  exit 77
fi
ip addr add "$subnet.1/24" dev "$bridge"
ip link set "$bridge" up
index=11
hosts_lines=""
for node in "${nodes[@]}"; do
  ip netns add "$node"
  ip link add "veth-$node" type veth peer name eth0 netns "$node"
  ip link set "veth-$node" master "$bridge" up
  ip -n "$node" addr add "$subnet.$index/24" dev eth0
  ip -n "$node" link set eth0 up
  ip -n "$node" link set lo up
  ip -n "$node" route add default via "$subnet.1"
  touch "$dir/uts.$node"
  unshare --uts="$dir/uts.$node" hostname "$node"
  hosts_lines+="$subnet.$index $node $hosts_marker"$'\n'
  index=$((index + 1))
done
printf '%s' "$hosts_lines" >>/etc/hosts

# munge with a key and socket of its own (a system munged, if any, is left alone).
head -c 1024 /dev/urandom >"$dir/munge.key"
chmod 600 "$dir/munge.key"
munged -F --force --key-file="$dir/munge.key" --socket="$dir/munge.sock" \
  --pid-file="$dir/munged.pid" --log-file="$dir/munged.log" --seed-file="$dir/munged.seed" \
  2>>"$dir/munged.log" &
pids+=($!)
for _ in $(seq 100); do [[ -S $dir/munge.sock ]] && break; sleep 0.1; done

control_host=$(hostname -s)
cat >"$dir/slurm.conf" <<EOF
ClusterName=parc
SlurmctldHost=$control_host($subnet.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=16817
SlurmdPort=16818
AuthType=auth/munge
AuthInfo=socket=$dir/munge.sock
CredType=cred/munge
StateSaveLocation=$dir/ctld
SlurmdSpoolDir=$dir/spool.%n
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.%n.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
KillWait=5
InactiveLimit=0
MinJobAge=10
TmpFS=$dir
NodeName=parc-node[1-3] NodeAddr=$subnet.[11-13] CPUs=4 State=UNKNOWN
PartitionName=parc Nodes=ALL Default=YES MaxTime=10 State=UP OverSubscribe=FORCE:4
EOF
mkdir -p "$dir/ctld"
export SLURM_CONF=$dir/slurm.conf

slurmctld -D -i -f "$SLURM_CONF" 2>>"$dir/slurmctld.log" &
pids+=($!)
for node in "${nodes[@]}"; do
  mkdir -p "$dir/spool.$node"
  nsenter --net="/var/run/netns/$node" --uts="$dir/uts.$node" \
    slurmd -D -N "$node" -f "$SLURM_CONF" 2>>"$dir/slurmd.$node.log" &
  pids+=($!)
done

# Up when every node is idle.
for attempt in $(seq 300); do
  idle=$(sinfo -h -N -t idle -o '%N' 2>/dev/null | sort -u | wc -l)
  ((idle == ${#nodes[@]})) && break
  if ((attempt == 300)); then
    log "the nodes did not come up in 30 s"
    sinfo -N 2>&1 >&2 || true
    tail -n 20 "$dir"/*.log >&2 || true
    exit 1
  fi
  sleep 0.1
done
log "up: ${nodes[*]} (slurmctld, munged and 3 slurmd; $dir)"

export PARC_CLUSTER_DIR=$dir PARC_CLUSTER_NODES="${nodes[*]}" PARC_CLUSTER_SUBNET=$subnet
# In the background: `wait` returns for a signal, so the trap tears down at once even while
# COMMAND runs (a foreground command would delay the trap until it ended).
set +e
"$@" &
command_pid=$!
wait "$command_pid"
status=$?
command_pid=""
set -e
exit "$status"
