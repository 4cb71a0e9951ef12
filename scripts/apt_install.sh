# Sourced by scripts/setup.sh and its hooks: one way to install Debian packages.
# apt_install_missing WHY PACKAGE...: installs those not yet installed (as root, or through sudo);
# prints one line when it installs something and nothing otherwise.
apt_install_missing() {
  local why=$1
  shift
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  echo "setup: installing ${missing[*]} ($why)"
  local SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
