# shellcheck shell=bash
# What the integration tests ask of the reference cloud's admin API and of the
# agent's unit, in one copy. Uses $PORT (the cloud's port) and $UUID (the
# device) at call time. ADMIN_VIA is the command that reaches the cloud's
# loopback: ct_net (lib/nspawn.sh: the container's network namespace) unless a
# test sets it, e.g. ADMIN_VIA=() for a cloud on the host's loopback or
# ADMIN_VIA=(ip netns exec NAME) for a namespace of its own.

ADMIN_VIA=(ct_net)

# admin METHOD PATH [JSON]: one call of the reference cloud's admin API; prints the answer.
admin() {
  "${ADMIN_VIA[@]}" curl -fsS -X "$1" -H 'Content-Type: application/json' ${3:+--data "$3"} "http://127.0.0.1:$PORT/admin$2"
}

# job_status ID: the job's status as the cloud holds it.
job_status() { admin GET "/jobs/$1" | jq -r .status; }

# job_is ID STATUS: whether the cloud holds the job in STATUS.
job_is() { [ "$(job_status "$1")" = "$2" ]; }

# job_final ID: whether the cloud holds the job in a final status.
job_final() { case "$(job_status "$1")" in SUCCEEDED|FAILED|TIMED_OUT|REJECTED|CANCELED) return 0 ;; *) return 1 ;; esac; }

# queue_job NAME DOCUMENT_JSON: queues a job for $UUID; prints the new job id.
queue_job() {
  admin POST "/devices/$UUID/jobs" "$(jq -cn --arg n "$1" --argjson d "$2" '{name:$n, document:$d}')" | jq -r '.job_id // .jobs[0].job_id'
}

# show PROP: one property of cloudjobs.service in the container (lib/nspawn.sh's ct).
show() { ct systemctl show -p "$1" --value cloudjobs.service; }

# is_active: whether cloudjobs.service is active in the container.
is_active() { [ "$(show ActiveState)" = active ]; }
