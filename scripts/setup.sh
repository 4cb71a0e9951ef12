#!/usr/bin/env bash
# Installs what the project needs from Debian (as root), once; a no-op when all is present.
# Used by the README's quick start and by .ci/run, so both see the same machine.
set -euo pipefail
packages=(cmake g++ make libeigen3-dev doctest-dev libbenchmark-dev libcli11-dev
          nlohmann-json3-dev libstb-dev doxygen graphviz)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# Optional extras installed by later parts of the project hook in here.
for extra in "$(dirname "$0")"/setup.d/*.sh; do
  [ -e "$extra" ] && bash "$extra"
done
echo "setup: ok"
