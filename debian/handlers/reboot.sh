#!/bin/sh
# cloudjobs handler under the name of AWS IoT Device Client's sample
# (runHandler reboot.sh, runAsUser root): the same as the `reboot` handler
# beside it, so DC's reboot job document runs unchanged and goes on after the boot.
set -eu
exec "$(dirname "$0")/reboot" "$@"
