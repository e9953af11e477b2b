# aarch64-linux-gnu.cmake — cross-compiles aem for 64-bit Arm Linux on a Debian x86-64 host
# with Debian's cross compiler and the arm64 multiarch packages (scripts/setup.sh
# --cross-aarch64 installs both; make test-aarch64 uses this file):
#   cmake -S . -B build/aarch64 -G Ninja -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake
# The libraries (Boost.Context, liburing, mimalloc) are the arm64 builds under
# /usr/lib/aarch64-linux-gnu; the headers are the ones in /usr/include, shared with the host's
# packages of the same version. Programs built here (doctest's test discovery, ctest) run
# through qemu-user. No x86-64 inline switch on this target: capsules switch with
# Boost.Context's fcontext (runtime/fiber/context.cpp).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

set(AEM_CROSS_TRIPLE aarch64-linux-gnu)
set(CMAKE_C_COMPILER ${AEM_CROSS_TRIPLE}-gcc)
set(CMAKE_CXX_COMPILER ${AEM_CROSS_TRIPLE}-g++)

# Debian's multiarch layout: the target's files live in the host's own tree (sysroot /), so no
# find root path is set; CMAKE_LIBRARY_ARCHITECTURE makes find_package and find_library look in
# /usr/lib/aarch64-linux-gnu (where the arm64 packages' CMake configs and libraries are) and
# never in the host's /usr/lib/x86_64-linux-gnu.

# pkg-config (liburing) reads the target's .pc files only, never the host's.
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/${AEM_CROSS_TRIPLE}/pkgconfig:/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")
set(ENV{PKG_CONFIG_SYSROOT_DIR} "")

# Running target programs (doctest's test discovery at build time, ctest): qemu-user. `-L /`:
# the program's loader and every library come from the host's arm64 multiarch tree
# (/lib/ld-linux-aarch64.so.1, /lib/aarch64-linux-gnu: libc6:arm64, which the arm64 -dev
# packages pull in), found through the host's /etc/ld.so.cache. Not `-L /usr/aarch64-linux-gnu`:
# that takes the cross toolchain's loader (libc6-arm64-cross) but the cache still hands it the
# multiarch libc.so.6 of another build, and the mismatched pair hangs in the first
# pthread_create (its stack-cache list in the loader's private data is not where that libc
# looks). Override with -DCMAKE_CROSSCOMPILING_EMULATOR=... (e.g. qemu-aarch64-static, or a
# `timeout` in front).
if(NOT DEFINED CMAKE_CROSSCOMPILING_EMULATOR)
  find_program(AEM_QEMU_AARCH64 NAMES qemu-aarch64 qemu-aarch64-static)
  if(AEM_QEMU_AARCH64)
    set(CMAKE_CROSSCOMPILING_EMULATOR "${AEM_QEMU_AARCH64};-L;/" CACHE STRING "How target programs run on the build host")
  endif()
endif()
