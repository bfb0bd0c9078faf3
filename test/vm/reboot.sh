#!/usr/bin/env bash
# Jobs that reboot a real machine: the shipped reboot handler (exit 194 and
# the default reboot_command) reboots the VM; the kernel's boot_id changes;
# systemd starts the agent in the new boot, which resumes the job: it ends
# after the boot. Then a power cut while the job is REBOOTING (the reboot was
# asked for and journaled): the next boot resumes it all the same.
#
# Usage: test/vm/reboot.sh [--suite bookworm|trixie] [DEB]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VM_REPO="$(cd "$HERE/../.." && pwd)"
SUITE=bookworm
if [ "${1:-}" = --suite ]; then SUITE=$2; shift 2; fi
IT_NAME=vm-reboot-$SUITE
. "$VM_REPO/test/integration/lib/common.sh"
. "$HERE/lib/vm.sh"
. "$HERE/lib/agent.sh"
vm_test_prepare reboot "${1:-}"
cleanup() { vm_cleanup; rm -rf "$WORK"; }
trap cleanup EXIT

# reboot_job MARK: [say the boot id and mark /run, reboot handler, say the boot id]
reboot_job() {
  jq -cn --arg mark "$1" '{version:"1.0", includeStdOut:true, steps:[
    {action:{name:"Before", type:"runCommand", runAsUser:"root", input:{command:["/bin/sh","-c",
      ("echo marked > " + $mark + "; echo \"before: boot $(cat /proc/sys/kernel/random/boot_id)\"")]}}},
    {action:{name:"Reboot", type:"runHandler", runAsUser:"root", input:{handler:"reboot"}}},
    {action:{name:"After", type:"runCommand", runAsUser:"root", input:{command:["/bin/sh","-c",
      ("if [ -e " + $mark + " ]; then echo \"" + $mark + " is still there: no reboot happened\" >&2; exit 1; fi; echo \"after: boot $(cat /proc/sys/kernel/random/boot_id)\"")]}}}]}'
}
# (-s: no report at all is "no", not jq's empty success)
rebooting_reported() { vm_reports "$1" | jq -s -e 'length > 0 and (last.status_details.rebooting == true)' >/dev/null; }

# check_resumed JOB BOOT_BEFORE BOOT_AFTER: the job ended SUCCEEDED, step 1 in the first boot, step 3 in the second.
check_resumed() {
  local job=$1 final stdout
  wait_until 180 "the job's final status" vm_job_final "$job" || {
    vm_admin GET "/jobs/$job" >&2 || true
    vm_reports "$job" >&2 || true
    vm_sh 'journalctl -u cloudjobs.service -b --no-pager -o cat | tail -n 30; ls -la /var/lib/cloudjobs' >&2 || true
  }
  check_eq "job status" SUCCEEDED "$(vm_job_status "$job")"
  final=$(vm_reports "$job" | tail -n1)
  check_eq "steps of the final report" '["Before",0,"Reboot",194,"After",0]' \
    "$(jq -c '[.status_details.steps[] | .name, .exit_code]' <<<"$final")"
  stdout=$(jq -r .stdout <<<"$final")
  check_match "step 1 ran in the first boot" "before: boot $2" "$stdout"
  check_match "step 3 ran in the new boot" "after: boot $3" "$stdout"
}

step "$SUITE: install the agent; start it"
vm_agent_setup "$SUITE" "$WORK"
vm_sh systemctl start --no-block cloudjobs.service
wait_until 90 "agent active" vm_unit_is active || fail "the agent did not start"

step "$SUITE: a job reboots the VM (shipped handler, exit 194)"
boot1=$(vm_boot_id)
job1=$(vm_queue_job "reboot-vm" "$(reboot_job /run/cloudjobs-vm-mark)")
vm_wait_new_boot "$boot1" 300 || {
  vm_reports "$job1" >&2 || true
  vm_sh 'journalctl -b --no-pager | tail -n 40' >&2 || vm_show_console
  fail "the VM did not reboot within 300s"
}
boot2=$(vm_boot_id)
ok "boot_id changed: $boot1 -> $boot2"
check_resumed "$job1" "$boot1" "$boot2"
check_match "journal of the new boot" 'resumed job reboot-vm after reboot' \
  "$(vm_sh journalctl -u cloudjobs.service -b --no-pager -o cat || true)"

step "$SUITE: a power cut while the job is REBOOTING"
job2=$(vm_queue_job "reboot-cut" "$(reboot_job /run/cloudjobs-vm-mark2)")
check_match "queued job id" '^[0-9a-f-]{8,}$' "$job2"
wait_until 120 "the REBOOTING report" rebooting_reported "$job2" || true
vm_power_cut
ok "power cut after the cloud got the REBOOTING report"
vm_boot
boot3=$(vm_boot_id)
check_resumed "$job2" "$boot2" "$boot3"

step "$SUITE: power off"
vm_poweroff
finish
