#!/usr/bin/env bash
# The two quick-start commands, on a fresh machine with Python 3.11 and package registries:
#
#   bash deploy/local.sh run     # set up everything, then the bots or the local room
#   bash deploy/local.sh test    # set up everything, then the whole test suite
#
# Both create .venv when missing (torch pinned to the 2.13.0 CPU build: an unpinned
# torch pulls a multi-GB CUDA build) and install the project from deploy/constraints.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${WRITERSROOM_VENV:-.venv}"
PYTHON="${PYTHON:-python3.11}"
STAMP="$VENV/.writersroom-installed"

log() { printf '[writersroom] %s\n' "$*" >&2; }

ensure_env() {
  if [ -f "$STAMP" ] && [ "$STAMP" -nt pyproject.toml ] && [ "$STAMP" -nt deploy/constraints.txt ]; then
    return
  fi
  command -v "$PYTHON" >/dev/null || { log "needs $PYTHON on PATH (or set PYTHON=...)"; exit 1; }
  [ -x "$VENV/bin/python" ] || { log "creating $VENV"; "$PYTHON" -m venv "$VENV"; }
  log "installing dependencies into $VENV (first time: a few minutes)"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -c deploy/constraints.txt torch==2.13.0
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -c deploy/constraints.txt -e ".[ml,serve,dev]"
  touch "$STAMP"
}

ensure_postgres() {
  # CI and the dev machines run PostgreSQL on 127.0.0.1:5432; start it when it is installed but down.
  if command -v pg_isready >/dev/null && ! pg_isready -h 127.0.0.1 -p 5432 -q; then
    if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
      log "starting PostgreSQL"
      pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
    fi
  fi
}

case "${1:-}" in
  run)
    shift
    ensure_env
    exec "$VENV/bin/writersroom" start "$@"
    ;;
  test)
    shift
    ensure_env
    ensure_postgres
    export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
    "$VENV/bin/writersroom" models fetch
    exec "$VENV/bin/python" -m pytest "$@"
    ;;
  *)
    echo "usage: bash deploy/local.sh run|test [args]" >&2
    exit 2
    ;;
esac
