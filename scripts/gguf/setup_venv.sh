#!/usr/bin/env bash
# Creates out/peer-venv/ for scripts/gguf/convert.py: Debian's /usr/bin/python3 (torch, numpy,
# PyYAML and sentencepiece from Debian packages, seen through --system-site-packages) plus the
# pinned gguf package of scripts/gguf/requirements.txt. Prints the venv's python on its last line.
# Idempotent: when the venv already holds exactly these pins it returns at once.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="$root/out/peer-venv"
requirements="$root/scripts/gguf/requirements.txt"
stamp="$venv/.requirements.sha256"
python="${LLAMANE_TORCH_PYTHON:-/usr/bin/python3}"

want="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "$venv/bin/python"
  exit 0
fi

if [[ ! -x "$venv/bin/python" ]]; then
  "$python" -m venv --system-site-packages "$venv" >&2
fi
# --no-deps: pip must not replace Debian's numpy (torch 1.13 is built against it).
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
  --only-binary :all: --require-hashes -r "$requirements" >&2
"$venv/bin/python" -c "import gguf, numpy, torch, sentencepiece, yaml" >&2
# The stamp is written last so that an interrupted install is retried on the next run.
echo "$want" >"$stamp"
echo "$venv/bin/python"
