# shellcheck shell=bash
# Shared helpers of the integration tests: steps, checks, SKIP/FAIL semantics.
# CLOUDJOBS_REQUIRE_INTEGRATION=1 (CI) turns every SKIP into a failure.

IT_NAME=${IT_NAME:-integration}
IT_FAILURES=0

# The build's helpers too (package_version, built_deb, ...; sets ROOT, BUILD).
# shellcheck source=../../../src/build/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../../src/build/lib.sh"

# Print a step heading.
step() { printf '\n== %s: %s\n' "$IT_NAME" "$*" >&2; }

# Print a passed check.
ok() { printf '  ok   %s\n' "$*" >&2; }

# Record a failed check and go on (the test exits 1 at the end).
bad() {
  printf '  FAIL %s\n' "$*" >&2
  IT_FAILURES=$((IT_FAILURES + 1))
}

# Abort the whole test.
fail() {
  printf 'FAIL %s: %s\n' "$IT_NAME" "$*" >&2
  exit 1
}

# Skip the whole test with a reason, or fail when CI requires it to run.
skip() {
  if [ "${CLOUDJOBS_REQUIRE_INTEGRATION:-0}" = 1 ]; then
    fail "cannot run ($*) and CLOUDJOBS_REQUIRE_INTEGRATION=1 forbids a skip"
  fi
  printf 'SKIP %s: %s\n' "$IT_NAME" "$*" >&2
  exit 0
}

# check_eq WHAT EXPECTED ACTUAL
check_eq() {
  if [ "$2" = "$3" ]; then ok "$1 = '$3'"; else bad "$1: expected '$2', got '$3'"; fi
}

# check_match WHAT REGEX ACTUAL
check_match() {
  # a here-string, not a pipe: grep -q exits at the first match, and under
  # pipefail a writer still writing a long text would fail the check (SIGPIPE)
  if grep -Eq -- "$2" <<< "$3"; then ok "$1 ~ /$2/"; else bad "$1: expected to match /$2/, got '$3'"; fi
}

# poll_until SECONDS CMD...: retries CMD every 0.2 s; 1 on timeout, silently.
poll_until() {
  local deadline=$(($(date +%s) + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}

# wait_until SECONDS DESCRIPTION CMD...: poll_until, a failed check on timeout.
wait_until() {
  local limit=$1 what=$2
  shift 2
  poll_until "$limit" "$@" || { bad "timed out after ${limit}s waiting for $what"; return 1; }
}

# Exit with the verdict.
finish() {
  if [ "$IT_FAILURES" -gt 0 ]; then
    printf 'FAIL %s: %d check(s) failed\n' "$IT_NAME" "$IT_FAILURES" >&2
    exit 1
  fi
  printf 'PASS %s\n' "$IT_NAME" >&2
}
