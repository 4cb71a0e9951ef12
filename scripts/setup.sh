#!/usr/bin/env bash
# Installs what the project needs from Debian (as root), once; a no-op when all is present.
# Used by the README's quick start and by .ci/run, so both see the same machine.
set -euo pipefail
source "$(dirname "$0")/apt_install.sh"
packages=(cmake g++ make libeigen3-dev doctest-dev libbenchmark-dev libcli11-dev
          nlohmann-json3-dev libstb-dev doxygen graphviz)
apt_install_missing "build and test" "${packages[@]}"
# Optional extras installed by later parts of the project hook in here.
for extra in "$(dirname "$0")"/setup.d/*.sh; do
  [ -e "$extra" ] && bash "$extra"
done
echo "setup: ok"
