#!/usr/bin/env bash
# verify-sandbox-merge.sh — the milestone-6 checklist for the merged
# docker-compose.yml: it parses; with no variables it is the standard stack
# (slot-0 ports, ./data, ./models, ./strategies); nothing the pre-merge file
# offered is gone; every host port follows the slot variables; no
# container_name; same services as docker-compose.sandbox.yml.
#
# Usage: scripts/verify-sandbox-merge.sh [-live]
#   -live   also bring the main stack up on the standard ports and check it
# Exit: 0 every item passes · 1 an item failed (each ✗ line says why).
# A thin wrapper around `go tool mage merge:verify`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec go tool mage merge:verify "$@"
