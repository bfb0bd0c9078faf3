# shellcheck shell=bash
# The agent in a VM against the reference cloud on the host (source vm.sh first).
#
# API:
#   vm_test_prepare NAME [DEB]   sets DEB and WORK, or skips (see below)
#   vm_agent_setup SUITE WORKDIR [INI_LINE...]
#                       base image, fresh disk, the .deb ($DEB), api key and
#                       agent.ini (polls every second; the test's own lines
#                       appended) in the share, reference cloud, first boot,
#                       apt-get install of the .deb (or the disk another
#                       test of the run installed it on), config installed.
#                       The agent is installed and enabled, not started.
#                       The config is synced to the disk (as vm_agent_config
#                       does): a power cut must not leave it empty, which
#                       stops the agent at start (exit 78), not a test's aim.
#                       (VM_API_KEY: the device's key, default a random one)
#   (VM_POLL_INTERVAL: the polling interval of that agent.ini, default 1s)
#   vm_agent_config INI_LINE...     /etc/cloudjobs/agent.ini in the guest becomes these lines
#   vm_unit PROP         a property of cloudjobs.service in the guest
#   vm_unit_is STATE     its ActiveState is STATE (for wait_until)
#   vm_ready_seconds     seconds from the unit leaving "inactive" to "active"
#                        in this boot (empty while not active)
#   vm_queue_job NAME DOCUMENT_JSON [TIMEOUT_S]   prints the job id
#   vm_job_status ID / vm_job_final ID / vm_reports ID (every PATCH body, one a line)
#   vm_boot_id           the guest's kernel boot id
#   vm_run_job_doc CMD   a one-step job document running CMD (sh -c) as root
VM_UUID=3c9e0d1a-7b2f-4e5d-9a6c-1f2e3d4c5b6a

# vm_test_prepare NAME [DEB]: what every VM test does first: DEB (the given
# file, else build/'s amd64 .deb of package.json's version: not the newest
# file, which the self-update test, running beside, rebuilds as another
# version), a SKIP when no VM can run here
# (a failure under CLOUDJOBS_REQUIRE_INTEGRATION), and WORK, the test's own
# temp dir (/tmp/cloudjobs-vm-NAME.*). The test sets its own trap.
vm_test_prepare() {
  local name=$1 why
  DEB=$(realpath "${2:-$(built_deb amd64)}" 2>/dev/null || true)
  why=$(vm_unusable)
  [ -z "$why" ] || skip "$why"
  WORK=$(mktemp -d "/tmp/cloudjobs-vm-$name.XXXXXX")
}

vm_agent_ini() {
  printf '%s\n' '[cloud]' 'api_url = http://10.0.2.100/api/v1' 'allow_insecure_http = true' 'api_key_file = /etc/cloudjobs/api-key' \
    '[device]' "uuid = $VM_UUID" 'supervisor_url =' '[polling]' "interval = ${VM_POLL_INTERVAL:-1s}" 'max_backoff = 2s' \
    '[jobs]' 'allowed_users = root' "$@"
}

vm_agent_setup() {
  local suite=$1 work=$2 key installed='' started
  shift 2
  [ -n "${DEB:-}" ] && [ -f "$DEB" ] || fail "no amd64 .deb (run make deb ARCH=amd64 first)"
  vm_image "$suite"
  vm_init "$work"
  # the first test of a run (test/vm/run.sh sets VM_RUN_CACHE) keeps a copy of
  # its disk right after apt-get install; later tests of the run (same suite,
  # same .deb) start from it
  [ -z "${VM_RUN_CACHE:-}" ] || installed="$VM_RUN_CACHE/installed-$suite-$(sha256sum "$DEB" | cut -c1-16).img"
  if [ -n "$installed" ] && [ -s "$installed" ]; then
    cp --sparse=always "$installed" "$VM_DISK"
  else
    vm_new_disk
  fi
  mkdir -p "$work/share"
  cp "$DEB" "$work/share/cloudjobs_amd64.deb"
  key=${VM_API_KEY:-$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')}
  printf '%s\n' "$key" > "$work/share/api-key"
  vm_agent_ini "$@" > "$work/share/agent.ini"
  vm_share "$work/share"
  "$VM_REPO/node_modules/.bin/esbuild" "$VM_REPO/test/cloud/main.ts" --bundle --platform=node --format=cjs \
    --log-level=warning --outfile="$work/reference-cloud.cjs" || fail "bundling the reference cloud failed"
  vm_start_cloud "$VM_UUID" "$key"
  started=$(date +%s)
  vm_boot
  vm_wait_running || fail "the first boot did not finish"
  ok "$suite booted in $(($(date +%s) - started))s (kernel $(vm_sh uname -r); $(vm_sh systemd-analyze time 2>/dev/null | head -n1 || true))"
  if [ -n "$installed" ] && [ -s "$installed" ]; then
    ok "the .deb was installed with apt on this disk by an earlier test of this run"
  else
    started=$(date +%s)
    vm_install_deb cloudjobs_amd64.deb
    ok "the .deb installed with apt in $(($(date +%s) - started))s"
    if [ -n "$installed" ]; then
      vm_sh 'sync && fsfreeze --freeze /' || fail "fsfreeze in the guest failed"
      cp --sparse=always "$VM_DISK" "$installed.part" && mv "$installed.part" "$installed"
      vm_sh 'fsfreeze --unfreeze /' || fail "fsfreeze --unfreeze in the guest failed"
    fi
  fi
  vm_sh 'install -m 0600 /mnt/host/api-key /etc/cloudjobs/api-key && install -m 0640 /mnt/host/agent.ini /etc/cloudjobs/agent.ini && sync' \
    || fail "installing the config in the guest failed"
}

vm_agent_config() {
  printf '%s\n' "$@" | base64 -w0 > "$VM_WORK/agent.ini.b64"
  vm_sh "echo $(cat "$VM_WORK/agent.ini.b64") | base64 -d > /etc/cloudjobs/agent.ini.new && chmod 0640 /etc/cloudjobs/agent.ini.new && mv /etc/cloudjobs/agent.ini.new /etc/cloudjobs/agent.ini && sync"
}

vm_unit() { vm_sh systemctl show -p "$1" --value cloudjobs.service; }
vm_unit_is() { [ "$(vm_unit ActiveState)" = "$1" ]; }

vm_ready_seconds() {
  vm_sh 'eval "$(systemctl show -p ActiveState -p InactiveExitTimestampMonotonic -p ActiveEnterTimestampMonotonic cloudjobs.service)"
    [ "$ActiveState" = active ] && [ "$ActiveEnterTimestampMonotonic" -gt 0 ] || exit 0
    echo $(( (ActiveEnterTimestampMonotonic - InactiveExitTimestampMonotonic) / 1000000 ))'
}

vm_queue_job() {
  vm_admin POST "/devices/$VM_UUID/jobs" \
    "$(jq -cn --arg n "$1" --argjson d "$2" --arg t "${3:-}" '{name:$n, document:$d} + (if $t == "" then {} else {timeout_seconds: ($t|tonumber)} end)')" \
    | jq -r '.job_id // .jobs[0].job_id'
}
vm_job_status() { vm_admin GET "/jobs/$1" | jq -r .status; }
vm_job_is() { [ "$(vm_job_status "$1")" = "$2" ]; }
vm_job_final() { case "$(vm_job_status "$1")" in SUCCEEDED|FAILED|TIMED_OUT|REJECTED|CANCELED) return 0 ;; *) return 1 ;; esac; }
vm_reports() { vm_admin GET "/patches?jobId=$1" | jq -c '.patches[].body'; }
# vm_current_job_is ID: the agent's status file names job ID as its current job.
vm_current_job_is() { vm_sh 'cat /run/cloudjobs/status.json 2>/dev/null || true' | jq -e --arg id "$1" '.currentJob.jobId == $id' >/dev/null 2>&1; }
vm_boot_id() { vm_sh cat /proc/sys/kernel/random/boot_id; }

vm_run_job_doc() {
  jq -cn --arg c "$1" '{version:"1.0", includeStdOut:true, steps:[
    {action:{name:"Run", type:"runCommand", runAsUser:"root", input:{command:["/bin/sh","-c",$c]}}}]}'
}
