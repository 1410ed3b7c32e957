#!/bin/sh
# Installs the Debian packages that l2l needs, if any is missing.
# As root it runs apt-get; otherwise it prints the exact command and fails.
set -eu
# clang, libclang-rt-14-dev and libomp-14-dev: the libFuzzer harnesses; python3-*: the Python binding
# and its tests (Debian's /usr/bin/python3); openmpi-bin and libopenmpi-dev: `l2l train` on several
# processes (docs/DISTRIBUTED.md) and its tests.
pkgs="pkg-config libopenblas-dev libjansson-dev zlib1g-dev libcmocka-dev libplplot-dev
plplot-driver-cairo clang libclang-rt-14-dev libomp-14-dev python3-numpy python3-torch python3-pytest
python3-setuptools python3-pip openmpi-bin libopenmpi-dev"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# Tools count if they are on PATH, however they were installed (a Node.js from another
# source ships its own npm and conflicts with Debian's npm package).
command -v cc >/dev/null 2>&1 && command -v make >/dev/null 2>&1 || missing="$missing build-essential"
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "l2l: missing Debian packages:$missing" >&2
    echo "l2l: install them with:  sudo apt-get update && sudo apt-get install -y$missing" >&2
    exit 1
fi
echo "l2l: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >&2
apt-get install -y -q --no-install-recommends $missing >&2
