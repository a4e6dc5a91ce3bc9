#!/usr/bin/env bash
# Installs those of the named Debian packages that are missing.
#   usage: apt-install.sh [--no-install-recommends] PACKAGE...
set -euo pipefail
flags=()
if [[ ${1:-} == --no-install-recommends ]]; then
  flags+=("$1")
  shift
fi
missing=()
for p in "$@"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${flags[@]}" \
    "${missing[@]}" >/dev/null
fi
