#!/usr/bin/env bash
# The docs and notebooks (issue 5): gnuplot draws the notebooks' line plots, libjs-mathjax lets
# the Doxygen site render its formulas offline, python3 runs the page and notebook renderers.
# A no-op when all are present.
set -euo pipefail
source "$(dirname "$0")/../apt_install.sh"
packages=(gnuplot-nox libjs-mathjax fonts-dejavu-core python3)
apt_install_missing "docs, notebooks" "${packages[@]}"
echo "setup: docs ok"
