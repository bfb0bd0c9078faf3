#!/usr/bin/env bash
# The agent on a real boot: Debian's kernel and initramfs in qemu (so /run is
# mounted noexec, as on a Pi booting through its initramfs), cgroup v2, the
# .deb installed with apt and its unit unchanged. The unit reaches READY
# within 30 s of its start, STATUS is set and a job runs; the same again after
# a reboot, where systemd starts the agent on its own.
#
# Usage: test/vm/boot.sh [--suite bookworm|trixie] [DEB]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VM_REPO="$(cd "$HERE/../.." && pwd)"
SUITE=bookworm
if [ "${1:-}" = --suite ]; then SUITE=$2; shift 2; fi
IT_NAME=vm-boot-$SUITE
. "$VM_REPO/test/integration/lib/common.sh"
. "$HERE/lib/vm.sh"
. "$HERE/lib/agent.sh"
vm_test_prepare boot "${1:-}"
cleanup() { vm_cleanup; rm -rf "$WORK"; }
trap cleanup EXIT

# check_ready BOOT: the unit is active within 30 s of its start, with a STATUS, and a job runs.
check_ready() {
  local boot=$1 ready job
  wait_until 60 "cloudjobs.service active ($boot)" vm_unit_is active || {
    vm_sh 'journalctl -u cloudjobs.service -b --no-pager | tail -n 20' >&2 || true
    bad "$boot: the unit is '$(vm_unit ActiveState)/$(vm_unit SubState)', never READY"
    return 0
  }
  ready=$(vm_ready_seconds)
  if [ -n "$ready" ] && [ "$ready" -le 30 ]; then ok "$boot: READY ${ready}s after the unit's start"; else bad "$boot: READY after '${ready}'s (limit 30)"; fi
  check_eq "$boot: systemctl is-active" active "$(vm_sh systemctl is-active cloudjobs.service || true)"
  check_match "$boot: STATUS" '.+' "$(vm_unit StatusText)"
  check_eq "$boot: NRestarts" 0 "$(vm_unit NRestarts)"
  job=$(vm_queue_job "boot-job" "$(vm_run_job_doc 'echo "ran in boot $(cat /proc/sys/kernel/random/boot_id)"')")
  wait_until 60 "$boot: the job's final status" vm_job_final "$job" || true
  check_eq "$boot: job status" SUCCEEDED "$(vm_job_status "$job")"
  check_match "$boot: job output" "ran in boot $(vm_boot_id)" "$(vm_reports "$job" | tail -n1 | jq -r .stdout)"
}

step "$SUITE: install the .deb in a VM"
vm_agent_setup "$SUITE" "$WORK"
check_eq "/run mounted noexec (initramfs-tools)" noexec "$(vm_sh 'findmnt -no OPTIONS /run | tr , "\n" | grep -x noexec')"
check_eq "cgroup v2" cgroup2fs "$(vm_sh stat -fc %T /sys/fs/cgroup)"
check_eq "unit enabled by the package" enabled "$(vm_sh systemctl is-enabled cloudjobs.service || true)"

step "$SUITE: start the unit"
boot1=$(vm_boot_id)
vm_sh systemctl start --no-block cloudjobs.service
check_ready "first start"

step "$SUITE: reboot; systemd starts the agent"
# in a second, so that vm-shell answers before systemd stops it
vm_sh --timeout 20 "setsid sh -c 'sleep 1; systemctl reboot' >/dev/null 2>&1 < /dev/null &" || true
vm_wait_new_boot "$boot1" 300 || { vm_show_console; fail "no new boot within 300s"; }
vm_wait_running || true
check_ready "after the reboot"

step "$SUITE: power off"
vm_poweroff
finish
