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
boot_after_cut() { vm_boot; PANICS=0; }

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

# take_moment KIND: waits for a moment of KIND and cuts the power then; WHY
# says why when the moment never came (empty when it came). Not a condition
# (`if take_moment`): errexit must stay on inside it.
take_moment() {
  local kind=$1 tag s id pause
  WHY=
  case "$kind" in
    during-step)
      pick_step 3; tag=$TAG s=$S
      poll_until 60 has_line "^S $tag $s " || { WHY="$tag step $s never started"; return 0; }
      pause=$(random_tenths 15); sleep "$pause"
      cut_power "$kind: $tag step $s running (${pause}s after its start was seen)" ;;
    between-steps)
      pick_step 2; tag=$TAG s=$S
      poll_until 60 has_line "^E $tag $s$" || { WHY="$tag step $s never ended"; return 0; }
      cut_power "$kind: $tag after step $s ended" ;;
    after-hand-out)
      # From the agent's status: the job is journaled before it shows there.
      # A cut before that (the answer still on its way) loses the job for
      # good, which no agent can prevent (README, "Nothing lost, nothing run twice").
      queue_cut_job; tag=$TAG id=$ID
      poll_until 60 vm_job_is "$id" IN_PROGRESS || { WHY="$tag was never handed out"; return 0; }
      poll_until 60 vm_current_job_is "$id" || { WHY="the agent never showed $tag as its job"; return 0; }
      pause=$(random_tenths 10); sleep "$pause"
      cut_power "$kind: $tag ${pause}s after the agent's status showed it" ;;
    report-in-flight)
      tag=$TAG id=$ID
      poll_until 60 report_held "$id" || { WHY="$tag's first report never arrived"; return 0; }
      pause=$(random_tenths 10); sleep "$pause"
      cut_power "$kind: $tag, ${pause}s after a PATCH of it arrived (its answer held 20 s)"
      vm_admin DELETE /faults >/dev/null ;;
    during-recovery)
      boot_after_cut
      poll_until 60 agent_started || { WHY="the agent did not start after cut ${#MOMENTS[@]}"; return 0; }
      pause=$(random_tenths 30)
      sleep "$pause"
      cut_power "$kind: ${pause}s after the agent's start in the boot after cut ${#MOMENTS[@]}" ;;
  esac
}

# new_panic: the guest kernel panicked since the last boot_after_cut or the
# last new_panic (TCG on a loaded host; two CI runs in a row had one, RIP in
# sched_clock_cpu and update_curr); panic=1 reboots it by itself.
PANICS=0
new_panic() {
  local n
  n=$(vm_panics)
  [ "$n" -gt "$PANICS" ] || return 1
  PANICS=$n
}

# after_panic KIND: a moment of KIND did not come because the guest kernel
# panicked and rebooted: that reboot loses the page cache like a cut, so its
# boot is checked like one (a during-recovery moment is cut again first: it
# boots the disk itself); then KIND is prepared again.
after_panic() {
  printf '  the guest kernel panicked and rebooted itself (%s): an extra cut, not counted; %s again\n' "$WHY" "$1" >&2
  EXTRA_CUTS=$((EXTRA_CUTS + 1))
  vm_admin DELETE /faults >/dev/null
  if [ "$1" = during-recovery ]; then
    vm_power_cut
  else
    vm_wait_shell 300 || fail "the VM did not answer within 300s of its panic"
    vm_mount_share
    check_after_boot
  fi
  prepare_cut "$1"
}

step "$SUITE: $CUTS power cuts"
kinds=(during-step between-steps after-hand-out report-in-flight during-recovery)
LAST_CUT=$(date +%s)
EXTRA_CUTS=0
prepare_cut "${kinds[0]}"
i=1
while [ "$i" -le "$CUTS" ]; do
  kind=${kinds[$(( (i - 1) % ${#kinds[@]} ))]}
  next=${kinds[$(( i % ${#kinds[@]} ))]}
  take_moment "$kind"
  if [ -n "$WHY" ]; then
    # a panic is retried (a few times at most: each one is a real reboot); any other miss fails
    { new_panic && [ "$EXTRA_CUTS" -lt 3 ]; } || fail "$WHY"
    after_panic "$kind"
    continue
  fi
  [ "$i" = "$CUTS" ] || prepare_cut "$next"
  # a during-recovery cut next boots this disk itself and cuts the recovery short
  if [ "$i" = "$CUTS" ] || [ "$next" != during-recovery ]; then
    boot_after_cut
    check_after_boot
  fi
  i=$((i + 1))
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
[ "$EXTRA_CUTS" = 0 ] || printf '  and %s reboot(s) by a guest kernel panic, each checked like a cut\n' "$EXTRA_CUTS" >&2
[ "${#MOMENTS[@]}" -ge "$CUTS" ] || bad "only ${#MOMENTS[@]} of $CUTS cuts happened"
vm_poweroff
finish
