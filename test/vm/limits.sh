#!/usr/bin/env bash
# Per-job resource limits on a real kernel with cgroup v2 (README "Resource
# limits"): one boot per suite runs every case.
#   - a step allocating 4x memory_max ends FAILED "out of memory: ..." and the
#     agent keeps its PID (and takes the next job)
#   - a fork bomb is stopped at the job's tasksMax (the document's own, lower
#     than tasks_max) and reported
#   - a CPU hog under the document's cpuQuota 20% gets about that share of a
#     CPU, from the slice's cpu.stat in the report (printed, bounded loosely)
#   - double-forked sleeps (one with an empty environment) are gone after the job
#   - a job asking for more memory than memory_max is REJECTED with the reason
#   - job processes run with oom_score_adj 500, the agent with -500
#
# Usage: test/vm/limits.sh [--suite bookworm|trixie] [DEB]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VM_REPO="$(cd "$HERE/../.." && pwd)"
SUITE=bookworm
if [ "${1:-}" = --suite ]; then SUITE=$2; shift 2; fi
IT_NAME=vm-limits-$SUITE
. "$VM_REPO/test/integration/lib/common.sh"
. "$HERE/lib/vm.sh"
. "$HERE/lib/agent.sh"
vm_test_prepare limits "${1:-}"
cleanup() { vm_cleanup; rm -rf "$WORK"; }
trap cleanup EXIT

# doc LIMITS_JSON STEP_COMMAND...: a job document of one root step per command, with "limits".
doc() {
  local limits=$1
  shift
  jq -cn --argjson l "$limits" '{version:"1.0", includeStdOut:true, limits:$l,
    steps:[$ARGS.positional | to_entries[] | {name:"step \(.key + 1)", type:"runCommand", runAsUser:"root",
      input:{command:["/bin/sh","-c",.value]}}]}' --args "$@"
}
# run_job NAME DOCUMENT: queues it, waits for its final status; prints the job id.
run_job() {
  local id
  id=$(vm_queue_job "$1" "$2")
  wait_until 180 "job $1 final" vm_job_final "$id" >&2 || true
  echo "$id"
}
final() { vm_reports "$1" | tail -n1; }

step "$SUITE: install the .deb in a VM (memory_max 64MiB, tasks_max 64)"
vm_agent_setup "$SUITE" "$WORK" 'memory_max = 64MiB' 'tasks_max = 64' 'cpu_quota = 80%' 'kill_grace = 2s'
check_eq "cgroup v2" cgroup2fs "$(vm_sh stat -fc %T /sys/fs/cgroup)"
out=$(vm_sh cloudjobs check-config 2>&1 || true)
check_match "check-config: limits enforced" 'resource limits: enforced \(memory 64 MiB, 64 tasks, CPU 80%\)' "$out"
vm_sh systemctl start --no-block cloudjobs.service
wait_until 300 "cloudjobs.service active" vm_unit_is active || {
  vm_sh 'journalctl -u cloudjobs.service -b --no-pager | tail -n 20' >&2 || true
  fail "the agent never became active"
}
pid=$(vm_unit MainPID)
check_eq "the agent's oom_score_adj" -500 "$(vm_sh cat /proc/"$pid"/oom_score_adj)"

step "$SUITE: a step allocating 4x memory_max"
job=$(run_job oom "$(doc '{}' 'dd if=/dev/zero of=/dev/null bs=256M count=1' 'echo never')")
check_eq "OOM job status" FAILED "$(vm_job_status "$job")"
report=$(final "$job")
check_eq "OOM reason" "step 1 failed: out of memory: the job's memory limit is 64 MiB (jobs.memory_max)" "$(jq -r .reason <<<"$report")"
check_eq "OOM: the step after it did not run" 1 "$(jq -r .executed_steps <<<"$report")"
peak=$(jq -r .status_details.limits.memory_peak <<<"$report")
ok "OOM job: peak memory $peak bytes (memory.peak), limits $(jq -c '.status_details.limits | {memory_max, tasks_max, cpu_quota_percent, unit}' <<<"$report")"
check_eq "the agent kept its PID" "$pid" "$(vm_unit MainPID)"
check_eq "the agent was not restarted" 0 "$(vm_unit NRestarts)"
check_match "the kernel logged the OOM kill in the job's slice" 'cloudjobs-jobs-' "$(vm_sh 'journalctl -k -b --no-pager | grep -i "oom" | tail -n 5' || true)"

step "$SUITE: a fork bomb under the document's tasksMax 16"
job=$(run_job bomb "$(doc '{"tasksMax": 16}' 'bomb() { bomb | bomb & }; bomb; sleep 600')")
check_eq "fork bomb job status" FAILED "$(vm_job_status "$job")"
check_eq "fork bomb reason" "step 1 failed: stopped at the task limit: the job may have 16 processes and threads at once (the job's limits.tasksMax)" \
  "$(jq -r .reason <<<"$(final "$job")")"
check_eq "no job slice left" "" "$(vm_sh "systemctl list-units --plain --no-legend 'cloudjobs-jobs-*' | grep -v ' inactive ' || true")"

step "$SUITE: a CPU hog under cpuQuota 20%"
job=$(run_job cpu "$(doc '{"cpuQuota": "20%"}' 'timeout 10 sh -c "while :; do :; done"; exit 0')")
check_eq "CPU job status" SUCCEEDED "$(vm_job_status "$job")"
report=$(final "$job")
used=$(jq -r .status_details.limits.cpu_usage_ms <<<"$report")
wall=$(jq -r '.status_details.steps[0].duration_ms' <<<"$report")
share=$((used * 100 / (wall > 0 ? wall : 1)))
ok "CPU hog under cpuQuota 20%: ${used} ms of CPU in ${wall} ms (${share}% of one CPU; cpu.stat usage_usec of the slice)"
[ "$share" -le 50 ] || bad "the CPU hog got ${share}% of a CPU under a 20% quota"

step "$SUITE: double-forked sleeps"
job=$(run_job daemons "$(doc '{}' 'setsid sleep 600 </dev/null >/dev/null 2>&1 & (env -i setsid sh -c "sleep 601" </dev/null >/dev/null 2>&1 &); echo oom_score_adj $(cat /proc/self/oom_score_adj)')")
check_eq "daemons job status" SUCCEEDED "$(vm_job_status "$job")"
check_match "job processes have oom_score_adj 500" 'oom_score_adj 500' "$(jq -r .stdout <<<"$(final "$job")")"
check_eq "no sleep left after the job" "" "$(vm_sh 'pgrep -a -x sleep || true')"

step "$SUITE: a job asking for more than memory_max"
job=$(run_job greedy "$(doc '{"memoryMax": "1GiB"}' 'echo never')")
check_eq "greedy job status" REJECTED "$(vm_job_status "$job")"
check_match "greedy reason" "limits.memoryMax 1 GiB is above this device's jobs.memory_max of 64 MiB; a job may only lower its limits" \
  "$(jq -r .reason <<<"$(final "$job")")"
check_eq "the agent still has its PID" "$pid" "$(vm_unit MainPID)"

step "$SUITE: power off"
vm_poweroff
finish
