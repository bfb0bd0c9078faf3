#!/usr/bin/env bash
# The clock of a Pi without RTC: the VM boots with its RTC two years behind
# (no NTP), and the wall clock is stepped forward and back (date -s) while
# jobs run. Elapsed time is what counts: a 30 s job timeout fires after about
# 30 s of elapsed time (not at once when the clock jumps ahead, not never when
# it jumps back), a 20 s step reports about 20 s (never hours), and the agent
# stays up (its watchdog allowance is elapsed time too). Last, the agent is
# pointed at a cloud over TLS whose certificate starts today: the error it
# logs says the device's clock is probably wrong.
#
# Usage: test/vm/clock.sh [--suite bookworm|trixie] [DEB]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VM_REPO="$(cd "$HERE/../.." && pwd)"
SUITE=bookworm
if [ "${1:-}" = --suite ]; then SUITE=$2; shift 2; fi
IT_NAME=vm-clock-$SUITE
. "$VM_REPO/test/integration/lib/common.sh"
. "$HERE/lib/vm.sh"
. "$HERE/lib/agent.sh"
vm_test_prepare clock "${1:-}"
TLS_PID=''
cleanup() {
  vm_cleanup
  if [ -n "$TLS_PID" ]; then kill -TERM "$TLS_PID" 2>/dev/null || true; wait "$TLS_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# durations_sane REPORT: every duration_ms in the report is a number from 0 to 1 h.
# (-s: an empty report is "no", not jq's empty success)
durations_sane() { jq -s -e 'length == 1 and ([.[0] | .. | objects | .duration_ms? | select(. != null)] | length > 0 and all(type == "number" and . >= 0 and . < 3600000))' <<<"$1" >/dev/null; }
step_started() { vm_sh 'test -e /var/lib/vm-clock-step'; }

step "$SUITE: a reference cloud over TLS, its certificate valid from now on"
mkdir -p "$WORK/tls" "$WORK/share"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 -subj /CN=cloudjobs-vm-test-ca \
  -keyout "$WORK/tls/ca.key" -out "$WORK/share/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=10.0.2.100 \
  -keyout "$WORK/tls/server.key" -out "$WORK/tls/server.csr" 2>/dev/null
openssl x509 -req -in "$WORK/tls/server.csr" -CA "$WORK/share/ca.pem" -CAkey "$WORK/tls/ca.key" -CAcreateserial -days 30 \
  -extfile <(printf 'subjectAltName=IP:10.0.2.100\n') -out "$WORK/tls/server.pem" 2>/dev/null
export VM_API_KEY VM_TLS_CLOUD_PORT
VM_API_KEY=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
"$VM_REPO/node_modules/.bin/esbuild" "$VM_REPO/test/cloud/main.ts" --bundle --platform=node --format=cjs \
  --log-level=warning --outfile="$WORK/tls-cloud.cjs"
setpriv --pdeathsig KILL node "$WORK/tls-cloud.cjs" --port 0 --device "$VM_UUID:$VM_API_KEY" \
  --tls-cert "$WORK/tls/server.pem" --tls-key "$WORK/tls/server.key" > "$WORK/tls-cloud.out" 2> "$WORK/tls-cloud.err" &
TLS_PID=$!
wait_until 20 "the TLS cloud" grep -q adminUrl "$WORK/tls-cloud.out" || { cat "$WORK/tls-cloud.err" >&2; fail "the TLS cloud did not start"; }
VM_TLS_CLOUD_PORT=$(head -n1 "$WORK/tls-cloud.out" | jq -r .port)
ok "TLS cloud on port $VM_TLS_CLOUD_PORT (the guest's 10.0.2.100:443)"

step "$SUITE: boot with the RTC two years behind"
export VM_RTC_BASE
VM_RTC_BASE=$(date -u -d '-2 years' +%Y-%m-%dT%H:%M:%S)
vm_agent_setup "$SUITE" "$WORK"
# systemd advances a clock older than its own build date at boot ("System
# time before build time"), as on a Pi without RTC (or fake-hwclock's last
# saved time): set it two years back once booted, before the agent starts.
ok "the guest's clock at boot: $(vm_sh date -u +%FT%TZ) (RTC base $VM_RTC_BASE)"
vm_sh "date -u -s @$(date -u -d '-2 years' +%s) >/dev/null"
check_eq "the guest's year" "$(date -u -d '-2 years' +%Y)" "$(vm_sh date -u +%Y)"
vm_sh systemctl start --no-block cloudjobs.service
wait_until 90 "agent active" vm_unit_is active || fail "the agent did not start"

step "$SUITE: a 30 s job timeout while the clock jumps 3 h ahead, then 2 days back"
vm_sh rm -f /var/lib/vm-clock-step
job=$(vm_queue_job "timeout-30s" "$(vm_run_job_doc 'touch /var/lib/vm-clock-step; sleep 300')" 30)
wait_until 60 "the step's start" step_started || true
started=$(date +%s)
vm_sh "date -s '+3 hours' >/dev/null"
sleep 5
vm_sh "date -s '-2 days' >/dev/null"
wait_until 180 "the job's final status" vm_job_final "$job" || true
elapsed=$(($(date +%s) - started))
final=$(vm_reports "$job" | tail -n1)
check_eq "job status" TIMED_OUT "$(vm_job_status "$job")"
duration=$(jq -r .status_details.duration_ms <<<"$final")
if [ "$duration" -ge 25000 ] && [ "$duration" -lt 600000 ]; then ok "reported duration ${duration} ms (elapsed on the host: ${elapsed}s)"; else bad "reported duration '${duration}' ms (about 30000 expected; elapsed on the host: ${elapsed}s)"; fi
durations_sane "$final" && ok "every duration_ms in the report is under an hour" || bad "a duration_ms out of range: $(jq -c '[.. | objects | .duration_ms? | select(. != null)]' <<<"$final")"

step "$SUITE: a 20 s step while the clock jumps 5 h ahead, then a day back"
vm_sh rm -f /var/lib/vm-clock-step
job=$(vm_queue_job "step-20s" "$(vm_run_job_doc 'touch /var/lib/vm-clock-step; sleep 20')")
wait_until 60 "the step's start" step_started || true
vm_sh "date -s '+5 hours' >/dev/null"
sleep 5
vm_sh "date -s '-1 day' >/dev/null"
wait_until 120 "the job's final status" vm_job_final "$job" || true
final=$(vm_reports "$job" | tail -n1)
check_eq "job status" SUCCEEDED "$(vm_job_status "$job")"
duration=$(jq -r '.status_details.steps[0].duration_ms' <<<"$final")
if [ "$duration" -ge 15000 ] && [ "$duration" -lt 600000 ]; then ok "the 20 s step reported ${duration} ms"; else bad "the 20 s step reported '${duration}' ms"; fi
durations_sane "$final" && ok "every duration_ms in the report is under an hour" || bad "a duration_ms out of range: $(jq -c '[.. | objects | .duration_ms? | select(. != null)]' <<<"$final")"

step "$SUITE: the agent stayed up through the jumps"
check_eq "ActiveState" active "$(vm_unit ActiveState)"
check_eq "NRestarts" 0 "$(vm_unit NRestarts)"

step "$SUITE: the cloud over TLS with the clock two years behind"
vm_sh 'install -m 0644 /mnt/host/ca.pem /etc/cloudjobs/cloud-ca.pem'
vm_agent_config '[cloud]' 'api_url = https://10.0.2.100/api/v1' 'ca_file = /etc/cloudjobs/cloud-ca.pem' \
  'api_key_file = /etc/cloudjobs/api-key' '[device]' "uuid = $VM_UUID" 'supervisor_url =' \
  '[polling]' 'interval = 1s' 'max_backoff = 2s' '[jobs]' 'allowed_users = root'
since=$(vm_sh date '+%Y-%m-%d\ %H:%M:%S')
vm_sh systemctl restart --no-block cloudjobs.service
tls_error_logged() { vm_sh "journalctl -u cloudjobs.service --since '$since' --no-pager -o cat" | grep -q 'TLS certificate not yet valid'; }
wait_until 90 "the TLS error in the journal" tls_error_logged || true
tls_line=$(vm_sh "journalctl -u cloudjobs.service --since '$since' --no-pager -o cat" | grep -m1 'TLS certificate not yet valid' || true)
check_match "the TLS error names the clock" "clock is probably wrong" "$tls_line"

step "$SUITE: power off"
vm_poweroff
finish
