#!/usr/bin/env bash
# Power cuts (kill -9 of qemu: the guest loses its page cache, the disk image
# keeps what reached it) at random moments across jobs of several steps:
# during a step, between steps, just after the hand-out, while a report is
# delivered (the cloud holds the PATCH's answer), during the recovery from
# the previous cut. Each step records its start and its end in a file it
# fsyncs (/var/lib/vm-steps.log). After each boot: the agent is active, no
# step that ended ran again, no state file was quarantined as corrupt; at the
# end every job has exactly one final status at the cloud, and an interrupted
# one's report says its step count is a lower bound (journal_may_lag: the step
# records are not synced one by one). Prints the cuts.
# The job a cut waits for is queued while the VM is down, before the boot
# that follows the previous cut: the agent takes it as soon as it runs, while
# the harness checks the boot (but for the cuts just after the hand-out).
# test/vm/run.sh splits the 20 cuts over a bookworm and a trixie VM, each
# covering every kind of moment; the last line here counts this VM's cuts.
#
# Usage: test/vm/power-cut.sh [--suite bookworm|trixie] [--cuts N] [DEB]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VM_REPO="$(cd "$HERE/../.." && pwd)"
SUITE=bookworm
CUTS=${VM_POWER_CUTS:-20}
while [ $# -gt 0 ]; do
  case "$1" in
    --suite) SUITE=$2; shift 2 ;;
    --cuts) CUTS=$2; shift 2 ;;
    *) break ;;
  esac
done
IT_NAME=vm-power-cut-$SUITE
. "$VM_REPO/test/integration/lib/common.sh"
. "$HERE/lib/vm.sh"
. "$HERE/lib/agent.sh"
vm_test_prepare cut "${1:-}"
cleanup() { vm_cleanup; rm -rf "$WORK"; }
trap cleanup EXIT
STEPS_LOG=/var/lib/vm-steps.log
JOBS=()
MOMENTS=()

# cut_job_doc TAG: three steps, each recording S (start) and E (end) durably, 2-4 s of work each.
cut_job_doc() {
  local tag=$1 steps='[]' i script
  for i in 1 2 3; do
    script="echo \"S $tag $i \$(cat /proc/sys/kernel/random/boot_id)\" >> $STEPS_LOG; sync $STEPS_LOG; sleep $((1 + RANDOM % 3)).\$((RANDOM % 10)); echo \"E $tag $i\" >> $STEPS_LOG; sync $STEPS_LOG"
    steps=$(jq -c --arg n "step $i" --arg s "$script" '. + [{action:{name:$n, type:"runCommand", runAsUser:"root", input:{command:["/bin/bash","-c",$s]}}}]' <<<"$steps")
  done
  jq -cn --argjson s "$steps" '{version:"1.0", includeStdOut:true, steps:$s}'
}

# steps_log: the guest's record of step starts and ends.
steps_log() { vm_sh "cat $STEPS_LOG 2>/dev/null || true"; }
has_line() { steps_log | grep -q -- "$1"; }

# queue_cut_job: queues a job; sets TAG and ID, appends ID:TAG to JOBS (not in a subshell).
queue_cut_job() {
  TAG="j$((${#JOBS[@]} + 1))"
  ID=$(vm_queue_job "cut-$TAG" "$(cut_job_doc "$TAG")")
  [ -n "$ID" ] && [ "$ID" != null ] || fail "queuing job $TAG failed"
  JOBS+=("$ID:$TAG")
}

# cut_power MOMENT: records the moment and cuts the power.
cut_power() {
  vm_power_cut
  MOMENTS+=("$1")
  printf '  cut %2d: %s (%ss after the previous cut)\n' "${#MOMENTS[@]}" "$1" "$(($(date +%s) - LAST_CUT))" >&2
  LAST_CUT=$(date +%s)
}

# check_after_boot: the checks after each boot. An agent that is not active
# ends the test at once: every later cut would only wait out its timeouts
# (20 cuts of those outlast CI's time limit).
check_after_boot() {
  local n=${#MOMENTS[@]}
  wait_until 180 "boot after cut $n: agent active" vm_unit_is active || {
    vm_sh 'journalctl -u cloudjobs.service -b --no-pager | tail -n 15' >&2 || true
    fail "after cut $n the agent is not active: the remaining cuts would test nothing"; }
  local corrupt
  corrupt=$(vm_sh 'find /var/lib/cloudjobs -name "*.corrupt-*"' || true)
  [ -z "$corrupt" ] || bad "after cut $n: state file(s) quarantined as corrupt: $corrupt"
  check_steps_once "after cut $n"
}

# check_steps_once WHEN: no step that recorded its end started again.
check_steps_once() {
  local again
  again=$(steps_log | awk '$1 == "E" { ended[$2 " " $3] = 1 } $1 == "S" && ended[$2 " " $3] { print $2 " step " $3 }')
  [ -z "$again" ] || bad "$1: step(s) that had ended ran again: $again"
}

# boot_after_cut: boots the same disk again (the agent starts by itself).
# The other kinds of cut expect the VM up with the agent checked.
boot_after_cut() { vm_boot; }

# prepare_cut KIND: what a cut of KIND needs at the cloud before the boot
# ahead of it: a job (TAG, ID) and, for report-in-flight, the cloud holding the
# answers to that job's PATCHes for 20 s. Not for after-hand-out (its job is
# queued once the boot is checked, so that the cut comes just after the
# hand-out, not in a step) nor during-recovery (no job).
prepare_cut() {
  case "$1" in during-step|between-steps|report-in-flight) queue_cut_job ;; *) return 0 ;; esac
  [ "$1" = report-in-flight ] || return 0
  vm_admin POST /faults "$(jq -cn --arg m "^PATCH .*$ID" '{kind:"slow", delayMs:20000, times:"always", match:$m}')" >/dev/null
}

# open_step TAG: the first step of job TAG that has not recorded its end (4: none).
open_step() {
  steps_log | awk -v t="$1" '$1 == "E" && $2 == t { e[$3] = 1 } END { for (s = 1; s <= 3; s++) if (!e[s]) { print s; exit } print 4 }'
}

# pick_step LAST: S, a random step from 1 to LAST of job TAG that has not
# ended yet (the job was queued before the boot and may be under way); when
# steps 1 to LAST have all ended, a new job is queued first (TAG changes).
pick_step() {
  local open
  open=$(open_step "$TAG")
  if [ "$open" -gt "$1" ]; then queue_cut_job; open=1; fi
  S=$((1 + RANDOM % $1))
  [ "$S" -ge "$open" ] || S=$open
}

# report_held ID: a PATCH of job ID has arrived at the cloud and waits for its
# held answer (the request log records it on arrival; /admin/patches only
# once answered).
report_held() {
  vm_admin GET /requests | jq -e --arg id "$1" \
    'any(.requests[]; .method == "PATCH" and (.path | contains($id)) and .fault == "slow" and .status == 0)' >/dev/null
}

# random_tenths MAX: prints 0..MAX tenths of a second as seconds (e.g. 1.3).
random_tenths() { local t=$((RANDOM % ($1 + 1))); echo "$((t / 10)).$((t % 10))"; }
agent_started() { [ "$(vm_unit ExecMainPID)" != 0 ]; }

step "$SUITE: install the agent; start it"
vm_agent_setup "$SUITE" "$WORK"
vm_sh systemctl start --no-block cloudjobs.service
wait_until 90 "agent active" vm_unit_is active || fail "the agent did not start"

step "$SUITE: $CUTS power cuts"
kinds=(during-step between-steps after-hand-out report-in-flight during-recovery)
LAST_CUT=$(date +%s)
prepare_cut "${kinds[0]}"
for i in $(seq 1 "$CUTS"); do
  kind=${kinds[$(( (i - 1) % ${#kinds[@]} ))]}
  next=${kinds[$(( i % ${#kinds[@]} ))]}
  case "$kind" in
    during-step)
      pick_step 3; tag=$TAG s=$S
      wait_until 60 "$tag step $s started" has_line "^S $tag $s " || fail "$tag step $s never started"
      pause=$(random_tenths 15); sleep "$pause"
      cut_power "$kind: $tag step $s running (${pause}s after its start was seen)" ;;
    between-steps)
      pick_step 2; tag=$TAG s=$S
      wait_until 60 "$tag step $s ended" has_line "^E $tag $s$" || fail "$tag step $s never ended"
      cut_power "$kind: $tag after step $s ended" ;;
    after-hand-out)
      # From the agent's status: the job is journaled before it shows there.
      # A cut before that (the answer still on its way) loses the job for
      # good, which no agent can prevent (README, Durability).
      queue_cut_job; tag=$TAG id=$ID
      wait_until 60 "$tag handed out" vm_job_is "$id" IN_PROGRESS || fail "$tag was never handed out"
      wait_until 60 "$tag taken by the agent" vm_current_job_is "$id" || fail "the agent never showed $tag as its job"
      pause=$(random_tenths 10); sleep "$pause"
      cut_power "$kind: $tag ${pause}s after the agent's status showed it" ;;
    report-in-flight)
      tag=$TAG id=$ID
      wait_until 60 "a report of $tag in flight" report_held "$id" || fail "$tag's first report never arrived"
      pause=$(random_tenths 10); sleep "$pause"
      cut_power "$kind: $tag, ${pause}s after a PATCH of it arrived (its answer held 20 s)"
      vm_admin DELETE /faults >/dev/null ;;
    during-recovery)
      boot_after_cut
      wait_until 60 "the agent's start" agent_started || fail "the agent did not start after cut ${#MOMENTS[@]}"
      pause=$(random_tenths 30)
      sleep "$pause"
      cut_power "$kind: ${pause}s after the agent's start in the boot after cut ${#MOMENTS[@]}" ;;
  esac
  [ "$i" = "$CUTS" ] || prepare_cut "$next"
  # a during-recovery cut next boots this disk itself and cuts the recovery short
  if [ "$i" = "$CUTS" ] || [ "$next" != during-recovery ]; then
    boot_after_cut
    check_after_boot
  fi
done

# all_jobs_final: every queued job has a final status at the cloud.
all_jobs_final() {
  local entry
  for entry in "${JOBS[@]}"; do vm_job_final "${entry%%:*}" || return 1; done
}

step "$SUITE: every job reaches exactly one final status"
# one deadline for all: the agent runs the jobs it still holds one by one
wait_until 240 "every job's final status" all_jobs_final || true
for entry in "${JOBS[@]}"; do
  id=${entry%%:*} tag=${entry#*:}
  finals=$(vm_reports "$id" | jq -r 'select(.status != "IN_PROGRESS") | .status' | sort -u | tr '\n' ' ')
  status=$(vm_job_status "$id")
  last=$(vm_reports "$id" | tail -n1)
  reason=$(jq -r .reason <<<"$last")
  if [ "$(wc -w <<<"$finals")" = 1 ] && [ "${finals% }" = "$status" ]; then
    ok "job $tag: $status ($reason)"
  else
    bad "job $tag: status '$status', final statuses reported: '$finals'"
  fi
  # every interruption here is a power cut: the step records may have rolled back, and the report must say so
  case "$reason" in
    interrupted:*) [ "$(jq -r .status_details.journal_may_lag <<<"$last")" = true ] \
      || bad "job $tag: interrupted by a power cut, but its report takes the journal's step count as exact" ;;
  esac
done
check_steps_once "at the end"
printf '%s power cuts:\n' "${#MOMENTS[@]}" >&2
printf '  %s\n' "${MOMENTS[@]}" >&2
printf '  POWER-CUTS %s %s (%s)\n' "$SUITE" "${#MOMENTS[@]}" "$(printf '%s\n' "${MOMENTS[@]}" | cut -d: -f1 | sort | uniq -c | awk '{ printf "%s%s x%s", (NR > 1 ? ", " : ""), $2, $1 }')" >&2
[ "${#MOMENTS[@]}" -ge "$CUTS" ] || bad "only ${#MOMENTS[@]} of $CUTS cuts happened"
vm_poweroff
finish
