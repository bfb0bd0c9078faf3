# shellcheck shell=bash
# Boots a cached rootfs with systemd-nspawn (volatile overlay: the cached tree
# stays pristine) and runs commands inside it with nsenter.
#
# Works on a host without systemd as PID 1 and with a cgroup v1 hybrid:
# --register=no (no machined), --keep-unit (no transient scope; nothing to
# ask over D-Bus), --private-network (the container's loopback is its own).

CT_PID=''      # the systemd-nspawn process
CT_LEADER=''   # the container's PID 1 (systemd), as seen from the host
CT_LOG=''

# nspawn_unusable: prints why nspawn cannot run here, or nothing.
nspawn_unusable() {
  [ "$(id -u)" = 0 ] || { echo "not root"; return; }
  command -v systemd-nspawn >/dev/null || { echo "systemd-nspawn missing (apt install systemd-container)"; return; }
  command -v nsenter >/dev/null || { echo "nsenter missing (util-linux)"; return; }
  [ -d /sys/fs/cgroup ] && [ -n "$(ls -A /sys/fs/cgroup 2>/dev/null)" ] || { echo "no cgroup filesystem at /sys/fs/cgroup"; return; }
  grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null || { echo "no overlayfs for --volatile=overlay"; return; }
}

# extracted_rootfs ARCH [SUITE]: extracts the cached tarball once next to it; prints the directory.
extracted_rootfs() {
  local tar dir
  tar=$(rootfs_tarball "$1" "${2:-$ROOTFS_SUITE}")
  dir=${tar%.tar}
  if [ ! -f "$dir/.extracted" ] || [ "$dir/.extracted" -ot "$tar" ]; then
    rm -rf "$dir" && mkdir -p "$dir"
    rootfs_extract "$tar" "$dir"
    touch "$dir/.extracted"
  fi
  echo "$dir"
}

# boot_container DIR BIND_RO_DIR: boots DIR, BIND_RO_DIR appears as /mnt/host.
boot_container() {
  local dir=$1 bind=$2 child i
  CT_LOG=$(mktemp /tmp/cloudjobs-it-nspawn.XXXXXX)
  systemd-nspawn -D "$dir" --volatile=overlay -b --register=no --keep-unit --private-network \
    -M cloudjobs-it --bind-ro="$bind:/mnt/host" --console=pipe </dev/null >"$CT_LOG" 2>&1 &
  CT_PID=$!
  for i in $(seq 1 200); do
    # PID 1 of the container is nspawn's child, or its grandchild when nspawn
    # keeps an intermediate process (depends on the console mode)
    CT_LEADER=$(pgrep -P "$CT_PID" -x systemd | head -n1 || true)
    child=$(pgrep -P "$CT_PID" -x systemd-nspawn | head -n1 || true)
    if [ -z "$CT_LEADER" ] && [ -n "$child" ]; then CT_LEADER=$(pgrep -P "$child" -x systemd | head -n1 || true); fi
    [ -n "$CT_LEADER" ] && break
    kill -0 "$CT_PID" 2>/dev/null || { cat "$CT_LOG" >&2; fail "systemd-nspawn exited during boot"; }
    sleep 0.1
  done
  [ -n "$CT_LEADER" ] || { cat "$CT_LOG" >&2; fail "no systemd inside the container after 20s"; }
  # is-system-running --wait returns once boot finished (running or degraded)
  # (it fails at once while systemd's private bus socket does not exist yet)
  local state='' deadline=$(($(date +%s) + 90))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    state=$(timeout 90 nsenter -t "$CT_LEADER" -a systemctl is-system-running --wait 2>/dev/null || true)
    case "$state" in running|degraded) break ;; esac
    sleep 0.2
  done
  case "$state" in
    running|degraded) ;;
    *) cat "$CT_LOG" >&2; fail "container did not finish booting (state '$state')" ;;
  esac
}

# Environment of commands run inside (nothing of the host's leaks in).
CT_ENV=(env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 TERM=dumb SYSTEMD_COLORS=0)

# ct CMD...: runs CMD inside the container (all namespaces, its root, a clean environment).
ct() { nsenter -t "$CT_LEADER" -a "${CT_ENV[@]}" "$@"; }

# ct_wait_step_started MARKER: waits (bounded) until a step has created MARKER
# in the container (under /dev/shm: the unit has PrivateTmp=yes, which steps
# share): its command runs, so its scope is started. A stop sent
# while the agent still waits for a step's scope would wait out drain_timeout
# (the scope's start is ordered after the agent's stop: README, Resource limits).
ct_wait_step_started() {
  wait_until 30 "the step's marker $1" ct test -e "$1" || true
}

# ct_net CMD...: runs a HOST command in the container's network namespace only.
ct_net() { nsenter -t "$CT_LEADER" -n "$@"; }

# ct_net_spawn CMD...: starts a HOST command in the container's network namespace
# in the background; CT_SPAWNED_PID is the command's own pid (nsenter execs it),
# so `kill $CT_SPAWNED_PID` ends it. (`ct_net CMD &` backgrounds a subshell
# whose death leaves CMD running.) Redirect the call, not the command.
CT_SPAWNED_PID=''
ct_net_spawn() {
  nsenter -t "$CT_LEADER" -n "$@" &
  CT_SPAWNED_PID=$!
}

# ct_start_cloud: starts the reference cloud ($WORK/reference-cloud.cjs) on the
# container's loopback port $PORT for device $UUID:$KEY, sets CLOUD_PID (killing
# it ends the cloud) and installs the key as /etc/cloudjobs/api-key.
ct_start_cloud() {
  ct_net_spawn node "$WORK/reference-cloud.cjs" --port "$PORT" --device "$UUID:$KEY" > "$WORK/cloud.out" 2> "$WORK/cloud.err"
  CLOUD_PID=$CT_SPAWNED_PID
  wait_until 20 "the reference cloud" grep -q adminUrl "$WORK/cloud.out" || { cat "$WORK/cloud.err" >&2; fail "reference cloud did not start"; }
  printf '%s\n' "$KEY" > "$WORK/api-key"
  ct install -m 0600 /mnt/host/api-key /etc/cloudjobs/api-key
}

# write_agent_ini [LINE...]: $WORK/agent.ini against that cloud (a poll every
# second), followed by the test's own LINEs (sections and keys).
write_agent_ini() {
  printf '%s\n' '[cloud]' "api_url = http://127.0.0.1:$PORT/api/v1" 'api_key_file = /etc/cloudjobs/api-key' \
    '[device]' "uuid = $UUID" 'supervisor_url =' '[polling]' 'interval = 1s' 'max_backoff = 2s' "$@" > "$WORK/agent.ini"
}

# ct_install_agent_ini [LINE...]: write_agent_ini, installed as /etc/cloudjobs/agent.ini.
ct_install_agent_ini() {
  write_agent_ini "$@"
  ct install -m 0640 /mnt/host/agent.ini /etc/cloudjobs/agent.ini
}

# stop_container: powers the container off (SIGTERM to nspawn), then waits.
stop_container() {
  [ -n "$CT_PID" ] || return 0
  if kill -0 "$CT_PID" 2>/dev/null; then
    kill -TERM "$CT_PID" 2>/dev/null || true
    local i
    for i in $(seq 1 300); do kill -0 "$CT_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$CT_PID" 2>/dev/null || true
  fi
  wait "$CT_PID" 2>/dev/null || true
  CT_PID=''
  [ -n "$CT_LOG" ] && rm -f "$CT_LOG"
}
