#!/bin/sh
# Install, only when missing, the Debian packages mctune needs to build, test and plot.
# Safe to run repeatedly: it asks dpkg first and calls apt-get only for what is absent.
# `install-deps.sh fleet` installs instead what the fleet scripts and their test need: Slurm and
# munge (their daemons are not configured or started here; scripts/fleet/slurm-local.sh does
# that in a folder of its own).
set -e
PKGS="build-essential pkg-config libxgboost-dev liblmdb-dev lmdb-utils libcurl4-openssl-dev libcjson-dev libxxhash-dev libopenblas-dev libdnnl-dev libblis-dev clang libclang-rt-14-dev libomp-dev python3 python3-yaml python3-jsonschema gnuplot-nox graphviz"
case ${1:-} in
"") ;;
fleet) PKGS="slurm-wlm munge" ;;
*) echo "usage: install-deps.sh [fleet]" >&2; exit 2 ;;
esac
missing=""
for p in $PKGS; do
    st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$st" in
    *"install ok installed"*) ;;
    *) missing="$missing $p" ;;
    esac
done
[ -z "$missing" ] && exit 0
echo "install-deps: installing:$missing" >&2
SUDO=""
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
        echo "install-deps: missing packages:$missing; run this script as root (or install them)" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >&2 || true
$SUDO apt-get install -y -qq --no-install-recommends $missing >&2
