#!/usr/bin/env bash
# Install revledger into .venv and run the demo on an embedded SQLite ledger.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/venv.sh
.venv/bin/revledger demo "$@"
