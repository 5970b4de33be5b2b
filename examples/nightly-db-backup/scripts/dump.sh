#!/usr/bin/env bash
# Dump one database in PostgreSQL's custom format (compressed, restorable table by table).
set -euo pipefail
: "${DATABASE:?DATABASE must be set}"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
file="${TMPDIR:-/tmp}/${DATABASE}-${stamp}.dump"
pg_dump --format=custom --no-owner --file="${file}" "${DATABASE}"
size=$(wc -c < "${file}")
echo "dumped ${DATABASE}: ${size} bytes"
{
  echo "file=${file}"
  echo "bytes=${size}"
} >> "${OPSFLOW_OUTPUT}"
