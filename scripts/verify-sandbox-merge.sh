#!/usr/bin/env bash
# verify-sandbox-merge.sh — the milestone-6 checklist for the merged
# docker-compose.yml: it parses; with no variables it is the standard stack
# (slot-0 ports, ./data, ./models, ./strategies); with no variables it runs
# the same main stack as the pre-merge file, field by field, but for the
# changes merge:apply -accept named; every host port follows the slot
# variables; no container_name; same services as the merge source.
#
# Usage: scripts/verify-sandbox-merge.sh [-live] [-accept=LIST] [-from=PATH] [-json]
#   -live     also bring the main stack up on the standard ports and check it
#   -accept   more intended changes (<service>.<field>,…) besides those apply recorded
#   -json     the report as one JSON document on stdout (for CI)
# Exit: 0 every item passes · 1 an item failed (each ✗ line says why).
# A thin wrapper around `go tool mage merge:verify`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec go tool mage merge:verify "$@"
