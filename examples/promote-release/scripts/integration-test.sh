#!/usr/bin/env bash
# Check that the test environment serves the expected release and its key pages answer.
set -euo pipefail
: "${BASE_URL:?}" "${EXPECTED_VERSION:?}"
passed=0
actual=$(curl -fsS "${BASE_URL}/version")
if [ "${actual}" != "${EXPECTED_VERSION#v}" ] && [ "${actual}" != "${EXPECTED_VERSION}" ]; then
  echo "expected ${EXPECTED_VERSION}, the test environment runs ${actual}" >&2
  exit 1
fi
passed=$((passed + 1))
for page in / /login /api/health; do
  curl -fsS -o /dev/null "${BASE_URL}${page}"
  echo "ok ${page}"
  passed=$((passed + 1))
done
echo "passed=${passed}" >> "${OPSFLOW_OUTPUT}"
