#!/usr/bin/env bash
# setup.sh — installs the Debian packages aem needs to build, test and benchmark.
# Idempotent: installs only what is missing. Needs root (or sudo) on Debian 12.
#   scripts/setup.sh              what build, tests, benchmarks and plots need
#   scripts/setup.sh --http-bench also wrk, h2load (nghttp2-client) and nginx, for make http-vs-nginx
#   scripts/setup.sh --cross-aarch64
#                                 also the aarch64 cross compiler, the arm64 (multiarch) builds
#                                 of Boost.Context, liburing and mimalloc, and qemu-user, for
#                                 make test-aarch64 (adds the dpkg architecture arm64 if missing)
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  libboost-context-dev liburing-dev libmimalloc-dev doctest-dev libbenchmark-dev
  libssl-dev openssl
  systemtap-sdt-dev
  libunwind-dev libdw-dev gdb
  clang libclang-rt-14-dev
  gnuplot-nox util-linux python3
)
cross_arch=""
case "${1:-}" in
  --http-bench) packages+=(wrk nghttp2-client nginx-light) ;;
  --cross-aarch64)
    cross_arch=arm64
    packages+=(g++-aarch64-linux-gnu
      libboost-context-dev:arm64 liburing-dev:arm64 libmimalloc-dev:arm64 libssl-dev:arm64
      libunwind-dev:arm64 libdw-dev:arm64
      qemu-user) ;;
esac

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
# The arm64 packages come from the same Debian mirrors once dpkg knows the architecture
# (before apt-get update, so that it fetches the arm64 package lists too).
if [ -n "$cross_arch" ] && ! dpkg --print-foreign-architectures | grep -qx "$cross_arch"; then
  echo "setup: adding the dpkg architecture $cross_arch"
  "${sudo_cmd[@]}" dpkg --add-architecture "$cross_arch"
fi
echo "setup: installing ${missing[*]}"
"${sudo_cmd[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
