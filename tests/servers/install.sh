#!/usr/bin/env bash
# Install the real test servers (oidc-provider, Medplum FHIR engine) from package-lock.json.
set -euo pipefail
cd "$(dirname "$0")"
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then
  echo "tests/servers needs Node >= 20.19 (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi
npm ci --no-audit --no-fund --loglevel=error
