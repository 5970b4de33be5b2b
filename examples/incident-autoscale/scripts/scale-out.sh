#!/usr/bin/env bash
# Add half again as many replicas (at least one more), never beyond MAX_REPLICAS.
set -euo pipefail
: "${SERVICE:?}" "${NAMESPACE:?}" "${MAX_REPLICAS:?}"
before=$(kubectl -n "${NAMESPACE}" get deployment "${SERVICE}" -o jsonpath='{.spec.replicas}')
after=$(( before + (before + 1) / 2 ))
if [ "${after}" -gt "${MAX_REPLICAS}" ]; then after=${MAX_REPLICAS}; fi
if [ "${after}" -le "${before}" ]; then
  echo "${SERVICE} already runs ${before} replicas, the most allowed" >&2
  exit 1
fi
kubectl -n "${NAMESPACE}" scale deployment "${SERVICE}" --replicas="${after}"
kubectl -n "${NAMESPACE}" rollout status deployment "${SERVICE}" --timeout=4m
printf 'before=%s\nafter=%s\n' "${before}" "${after}" >> "${OPSFLOW_OUTPUT}"
