#!/usr/bin/env bash
# Create .venv and install docvec with its test extras, once per change of pyproject.toml.
# Sourced by scripts/demo.sh and scripts/test.sh; safe to run again (it skips what is done).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

python_bin=${PYTHON:-}
if [ -z "$python_bin" ]; then
  for candidate in python3.11 python3.12 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then python_bin=$candidate; break; fi
  done
fi
[ -x .venv/bin/python ] || "$python_bin" -m venv .venv
# shellcheck disable=SC1091
. .venv/bin/activate

stamp=.venv/.docvec-installed
want=$(cat pyproject.toml scripts/constraints.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "==> installing docvec into .venv (first run takes a few minutes)"
  # The CPU build of torch first: sentence-transformers would otherwise pull a multi-GB CUDA build.
  # Where pip would pick a CUDA build of torch, set DOCVEC_TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu.
  python -m pip install -q ${DOCVEC_TORCH_INDEX_URL:+--index-url "$DOCVEC_TORCH_INDEX_URL"} "torch==2.13.0"
  # Then everything else within scripts/constraints.txt, and torch held to the build just installed.
  torch_pin="$(mktemp)"
  python -c 'import importlib.metadata as m; print("torch==" + m.version("torch"))' > "$torch_pin"
  python -m pip install -q -c scripts/constraints.txt -c "$torch_pin" -e ".[test]"
  rm -f "$torch_pin"
  echo "$want" > "$stamp"
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
