#!/usr/bin/env bash
# setup.sh — installs the Debian packages aem needs to build, test and benchmark.
# Idempotent: installs only what is missing. Needs root (or sudo) on Debian 12.
#   scripts/setup.sh              what build, tests, benchmarks and plots need
#   scripts/setup.sh --http-bench also wrk and nginx, for make http-vs-nginx
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  libboost-context-dev liburing-dev libmimalloc-dev doctest-dev libbenchmark-dev
  clang libclang-rt-14-dev
  gnuplot-nox util-linux python3
)
if [ "${1:-}" = "--http-bench" ]; then
  packages+=(wrk nginx-light)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
echo "setup: installing ${missing[*]}"
"${sudo_cmd[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
