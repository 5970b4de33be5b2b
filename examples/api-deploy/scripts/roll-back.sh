#!/usr/bin/env bash
# Put the previous release back. Here it only says what it would do; replace the echo with
# your deploy tool's rollback command.
set -euo pipefail
: "${ENVIRONMENT:?ENVIRONMENT must be set}"
echo "Rolling back the API in ${ENVIRONMENT} to the previous release"
echo "rolled_back=true" >> "${OPSFLOW_OUTPUT}"
