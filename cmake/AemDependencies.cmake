# Dependencies come from Debian packages (scripts/setup.sh installs them).
set(THREADS_PREFER_PTHREAD_FLAG ON)
find_package(Threads REQUIRED)
find_package(Boost 1.74 REQUIRED COMPONENTS context)
find_package(OpenSSL 3 REQUIRED)  # aem/tls (libssl-dev)
# mimalloc is optional for the library (it uses the process's allocator): it backs the opt-in
# aem::mimalloc target, which the tests, benchmarks and examples link.
find_package(mimalloc CONFIG QUIET)
find_package(PkgConfig REQUIRED)
pkg_check_modules(LIBURING REQUIRED IMPORTED_TARGET liburing>=2.3)
if(NOT TARGET aem_uring)
  add_library(aem_uring INTERFACE IMPORTED)
  target_link_libraries(aem_uring INTERFACE PkgConfig::LIBURING)
endif()
