#!/usr/bin/env bash
# The docs and notebooks (issue 5): gnuplot draws the notebooks' line plots, libjs-mathjax lets
# the Doxygen site render its formulas offline, python3 runs the page and notebook renderers.
# A no-op when all are present.
set -euo pipefail
packages=(gnuplot-nox libjs-mathjax fonts-dejavu-core python3)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]} (docs, notebooks)"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "setup: docs ok"
