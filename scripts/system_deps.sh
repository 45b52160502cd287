#!/usr/bin/env bash
# Installs the Debian packages ragserver needs beside its Python packages.
#   scripts/system_deps.sh runtime   what the server itself uses (the Dockerfile runs this)
#   scripts/system_deps.sh test      runtime + what the tests drive (make test, .ci/run)
# Installs only what is missing; needs root (or passwordless sudo) and apt-get. Without them it
# lists what is missing and exits non-zero, so a test run never starts half-equipped.
set -euo pipefail
what=${1:-test}

# tesseract-ocr(-eng): OCR of scanned PDF pages and image uploads (ingest/ocr.py).
runtime=(tesseract-ocr tesseract-ocr-eng)
test_only=(
  chromium                                             # the web page tests drive it (tests/ui)
  nginx                                                # deploy/nginx.conf runs (tests/deploy)
  python3.11-doc debian-reference-en postgresql-doc-15 # retrieval evaluation corpora (bench/eval)
)
packages=("${runtime[@]}")
[ "$what" = test ] && packages+=("${test_only[@]}")
[ ${#packages[@]} -eq 0 ] && exit 0

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then sudo=(); elif command -v sudo >/dev/null; then sudo=(sudo -n); else
  echo "system_deps: missing Debian packages: ${missing[*]} (run as root: apt-get install -y ${missing[*]})" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q
"${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
