#!/usr/bin/env bash
# The two set-up commands of the README:
#   scripts/dev.sh demo   — create .venv if needed, index the default codesense.yaml, answer a question with links
#   scripts/dev.sh test   — create .venv if needed, run the whole test suite (extra args go to pytest)
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${CODESENSE_VENV:-.venv}
PY=${PYTHON:-python3}
TORCH_VERSION=2.13.0
export RAY_USAGE_STATS_ENABLED=0 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false \
       DEEPEVAL_TELEMETRY_OPT_OUT=YES DO_NOT_TRACK=1 MLFLOW_ENABLE_TELEMETRY=false PIP_DISABLE_PIP_VERSION_CHECK=1

ensure_venv() {
  if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
  fi
  local stamp="$VENV/.codesense-installed"
  local want
  want=$(cat pyproject.toml scripts/dev.sh | sha256sum | cut -c1-16)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return
  fi
  echo "setting up $VENV (one time)..." >&2
  "$VENV/bin/python" -m pip install -q --upgrade pip >&2
  # CPU torch first, pinned: sentence-transformers then finds torch satisfied and pip never pulls a
  # multi-GB CUDA wheel. Set TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu where PyPI would
  # otherwise serve a CUDA build and no local wheel is available.
  if ! "$VENV/bin/python" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
    "$VENV/bin/python" -m pip install -q "torch==$TORCH_VERSION" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} >&2
  fi
  "$VENV/bin/python" -m pip install -q -e ".[dev]" >&2
  echo "$want" > "$stamp"
}

# The monitoring report is checked in a real headless browser (Debian's chromium). Install it for the test run
# where we are root on Debian and it is missing; elsewhere that one test skips with an install hint.
ensure_browser() {
  command -v chromium >/dev/null 2>&1 && return
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 || return 0
  echo "installing chromium for the report's browser test (one time)..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1; } ||
    echo "warning: could not install chromium; the report's browser test will skip" >&2
}

cmd=${1:-}
shift || true
case "$cmd" in
  demo)
    ensure_venv
    "$VENV/bin/codesense" index
    "$VENV/bin/codesense" ask "How is authorization implemented in the payments service?" --repo payments "$@"
    ;;
  test)
    ensure_venv
    ensure_browser
    exec "$VENV/bin/python" -m pytest "$@"
    ;;
  *)
    echo "usage: scripts/dev.sh demo|test [args]" >&2
    exit 2
    ;;
esac
