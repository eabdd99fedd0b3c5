#!/usr/bin/env bash
# sandbox-rollback.sh — restore the pre-merge docker-compose.yml, byte for
# byte, from the backup in ~/.ktrdr/sandbox/merge/<checkout>/ (or, if the
# backup is gone, from the rollback tag sandbox-merge/pre-<UTC time>). Runs
# no docker; harmless to run twice; keeps the tag and the merge state and
# removes only the backup, which it no longer needs.
#
# Usage: scripts/sandbox-rollback.sh
# Exit: 0 restored or nothing to do · 1 could not restore (the message says why).
# A thin wrapper around `go tool mage merge:rollback`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec go tool mage merge:rollback "$@"
