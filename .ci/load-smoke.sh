#!/usr/bin/env bash
# CI load smoke: 20 users for 20 s against the real service, the fake n8n (10% 503s) and
# Postgres, then the invariants and loadtests/thresholds.yaml. About 30 s of wall time; every
# loop is bounded. The server is RELIABILITY_DATABASE_URL when set, else an embedded PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/reliability-harness load --users 20 --spawn-rate 20 --duration 20s \
  --faults loadtests/faults/n8n-503.yaml --out out/load-smoke "$@"
