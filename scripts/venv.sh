# Sourced by the other scripts: a virtual environment in .venv with revledger installed.
# Usage: . scripts/venv.sh [extras]   (e.g. "test")
set -euo pipefail
if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
    echo "installing python3-venv (apt)..." >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
extras=${1:-}
.venv/bin/pip install --quiet --disable-pip-version-check -e ".${extras:+[$extras]}"
