#!/usr/bin/env bash
# Smoke test a deployed ingest: health, readiness, a rejected and an accepted LeadProsper webhook.
#   scripts/smoke_test.sh https://hookpipe-ingest-….run.app      (token in HOOKPIPE_SMOKE_TOKEN)
# Locally: source .hookpipe/dev.env; HOOKPIPE_SMOKE_TOKEN=$HOOKPIPE_LEADPROSPER_TOKENS scripts/smoke_test.sh "$INGEST_URL"
set -euo pipefail
url="${1:?usage: smoke_test.sh INGEST_URL}"
token="${HOOKPIPE_SMOKE_TOKEN:?set HOOKPIPE_SMOKE_TOKEN to an active LeadProsper token}"

check() { # name expected-status curl-args...
  local name=$1 expected=$2; shift 2
  local status
  status=$(curl -sS -o /tmp/hookpipe-smoke.out -w '%{http_code}' --max-time 15 "$@")
  if [ "$status" != "$expected" ]; then
    echo "smoke: $name: expected $expected, got $status: $(cat /tmp/hookpipe-smoke.out)" >&2
    exit 1
  fi
  echo "smoke: $name: $status"
}

check healthz 200 "$url/healthz"
check readyz 200 "$url/readyz"
check "wrong token" 401 -X POST "$url/webhooks/leadprosper" -H 'Authorization: Bearer smoke-wrong-token-000' \
  -H 'Content-Type: application/json' -d '{}'
request="smoke-$(date +%s)-$RANDOM"
check "signed webhook" 202 -X POST "$url/webhooks/leadprosper" -H "Authorization: Bearer ${token}" \
  -H 'Content-Type: application/json' \
  -d "{\"lp_request_uuid\":\"${request}\",\"lp_status\":\"SMOKE\",\"lp_lead_id\":\"smoke\"}"
echo "smoke: passed (event $(cat /tmp/hookpipe-smoke.out))"
