#!/usr/bin/env bash
# Creates or updates the end-to-end test virtual environment (tritonclient[http]) and prints
# its python path.
#
# The venv uses the Debian python with --system-site-packages so Debian's numpy is used; only
# the unmodified tritonclient HTTP client and its small pure-Python dependencies come from PyPI.
#
# Usage: tools/e2e-venv.sh [VENV_DIR]      (default: <repo>/.venv-e2e, or $TROUPE_E2E_VENV)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${1:-${TROUPE_E2E_VENV:-$repo_root/.venv-e2e}}"
sys_python=/usr/bin/python3

log() { echo "e2e-venv: $*" >&2; }

if [ ! -x "$venv/bin/python" ]; then
  log "creating $venv (system site packages)"
  "$sys_python" -m venv --system-site-packages "$venv"
fi
py="$venv/bin/python"
if ! "$py" -c 'import tritonclient.http' 2>/dev/null; then
  log "installing tritonclient[http]"
  "$py" -m pip install --disable-pip-version-check -q "tritonclient[http]"
fi
"$py" -c 'import tritonclient, numpy; print("e2e-venv: tritonclient", tritonclient.__version__ if hasattr(tritonclient, "__version__") else "?", "numpy", numpy.__version__)' >&2
echo "$py"
