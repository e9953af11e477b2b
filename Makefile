# aem — the two commands of the README, and the ones CI and benchmarking use.
#   make demo   install what is missing, build, run the showcase (exits by itself)
#   make test   install what is missing, build, run the whole test suite
# Other targets: test-asan, test-tsan, test-aarch64, fuzz-smoke, fuzz-ci, bench, bench-smoke, clean.

JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all setup demo test test-asan test-tsan fuzz-smoke bench bench-smoke clean

all: test

setup:
	@bash scripts/setup.sh

build/release/build.ninja: | setup
	cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DAEM_BUILD_TESTS=OFF \
	  -DAEM_BUILD_BENCH=ON -DAEM_BUILD_EXAMPLES=ON $(CMAKE_FLAGS)

# The showcase (scripts/demo.py): aem against a thread per connection at 100 and 1,000
# connections, then examples/aem_demo; about 30 s after the build. Only its programs are built.
DEMO_TARGETS = aem_load_client aem_thread_echo_server aem_work_server aem_demo
demo: setup build/release/build.ninja
	cmake --build build/release -j $(JOBS) --target $(DEMO_TARGETS)
	python3 scripts/demo.py --build build/release

# The suite: unit, stress and integration labels; every public header compiled alone; the
# install + find_package(aem) consumer check. It runs twice: on the default backend, then with
# every runtime forced onto the epoll fallback (AEM_BACKEND=epoll).
test: setup
	cmake -S . -B build/test -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DAEM_WERROR=ON $(CMAKE_FLAGS)
	cmake --build build/test -j $(JOBS)
	cd build/test && ctest -j $(JOBS) --output-on-failure --timeout 300
	cd build/test && AEM_BACKEND=epoll ctest -j $(JOBS) --output-on-failure --timeout 300

test-asan: setup
	cmake -S . -B build/asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DAEM_SANITIZE=address,undefined -DAEM_BOOST_CONTEXT_SWITCH=ON \
	  -DAEM_BUILD_BENCH=OFF -DAEM_WERROR=ON $(CMAKE_FLAGS)
	cmake --build build/asan -j $(JOBS)
	cd build/asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest -j $(JOBS) --output-on-failure --timeout 600
	cd build/asan && AEM_BACKEND=epoll ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest -j $(JOBS) --output-on-failure --timeout 600

test-tsan: setup
	cmake -S . -B build/tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DAEM_SANITIZE=thread \
	  -DAEM_BUILD_BENCH=OFF -DAEM_BUILD_EXAMPLES=OFF $(CMAKE_FLAGS)
	cmake --build build/tsan -j $(JOBS)
	cd build/tsan && TSAN_OPTIONS="halt_on_error=1 suppressions=$(CURDIR)/tests/tsan.supp" ctest -j $(JOBS) --output-on-failure --timeout 600 -L unit

# The libFuzzer targets (tests/fuzz), one after the other, FUZZ_SECONDS each (5: a developer's
# smoke run). Each starts from its corpus in tests/fuzz/corpus/, which it only reads; new inputs
# go to build/fuzz/tests/fuzz/scratch/, crash reproducers to build/fuzz/tests/fuzz/artifacts/.
FUZZ_SECONDS ?= 5
fuzz-smoke: setup
	cmake -S . -B build/fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
	  -DAEM_BUILD_FUZZ=ON -DAEM_BUILD_TESTS=ON -DAEM_BUILD_BENCH=OFF -DAEM_BUILD_EXAMPLES=OFF \
	  -DAEM_FUZZ_SECONDS=$(FUZZ_SECONDS) $(CMAKE_FLAGS)
	cmake --build build/fuzz -j $(JOBS) --target aem_arena_fuzz
	cmake --build build/fuzz -j $(JOBS) --target aem_http_parser_fuzz
	cd build/fuzz && ctest --output-on-failure -L fuzz

# CI's fuzz run: the same, 60 s per fuzzer.
.PHONY: fuzz-ci
fuzz-ci:
	$(MAKE) fuzz-smoke FUZZ_SECONDS=60

bench: build/release/build.ninja
	cmake --build build/release -j $(JOBS) --target aem_bench
	python3 scripts/bench_ratios.py build/release/bench/aem_bench

# A few milliseconds per benchmark: proves that every benchmark runs, measures nothing.
bench-smoke: build/release/build.ninja
	cmake --build build/release -j $(JOBS) --target aem_bench
	./build/release/bench/aem_bench --benchmark_min_time=0.001 > /dev/null

clean:
	rm -rf build build-rel

# The load benchmark (bench/load/README.md): baselines and aem's echo server under 100, 1,000
# and 10,000 ping-pong connections, server on core 0, client on core 1. LOAD_BENCH_FLAGS passes
# options to the script (default: 3 runs per cell, medians), e.g. LOAD_BENCH_FLAGS=--quick.
LOAD_BENCH_FLAGS ?= --repeat 3
.PHONY: load-bench
load-bench: build/release/build.ninja
	cmake --build build/release -j $(JOBS) --target aem_load_client aem_thread_load_client aem_epoll_echo_server aem_thread_echo_server \
	  $(if $(wildcard examples/echo_server.cpp),aem_echo_server)
	python3 scripts/load_bench.py --build build/release $(LOAD_BENCH_FLAGS)

# The offload benchmark (bench/offload/offload_bench.cpp): a one-core server's fast route, p99
# alone and while flood clients keep a 2 ms blocking route busy, with that call on aem::blocking's
# pool and then on the core itself. OFFLOAD_BENCH_FLAGS passes options, e.g. "--seconds 5".
OFFLOAD_BENCH_FLAGS ?=
.PHONY: offload-bench
offload-bench: build/release/build.ninja
	cmake --build build/release -j $(JOBS) --target aem_offload_bench
	build/release/bench/aem_offload_bench $(OFFLOAD_BENCH_FLAGS)

# The fiber-vs-thread comparison (bench/fiber_vs_thread/README.md): the same request workload
# served by aem (capsule per connection, registrations), a thread per connection and a thread
# pool behind epoll, at 10 to 10,000 connections; writes a CSV and gnuplot PNGs to
# build/release/fiber_vs_thread/. FVT_FLAGS passes options, e.g. FVT_FLAGS=--quick.
FVT_FLAGS ?=
.PHONY: fiber-vs-thread fiber-vs-thread-smoke
fiber-vs-thread: build/release/build.ninja
	cmake --build build/release -j $(JOBS) --target aem_load_client aem_thread_echo_server aem_work_server aem_pool_work_server
	python3 scripts/fiber_vs_thread.py --build build/release $(FVT_FLAGS)

# Seconds: 10 and 100 connections, half a second each — proves the whole chain works.
fiber-vs-thread-smoke:
	$(MAKE) fiber-vs-thread FVT_FLAGS="--quick $(FVT_FLAGS)"

# aem's HTTP server against nginx under wrk and under h2load (scripts/http_vs_nginx.py; needs
# wrk, nghttp2-client and nginx-light, which the setup script installs). HTTP_VS_NGINX_FLAGS
# passes options, e.g. HTTP_VS_NGINX_FLAGS=--quick, or, as an experiment,
# HTTP_VS_NGINX_FLAGS="--server-cpu 0.4" to hold each server to 40 % of its core, so that the
# server and not the client is the limit (root: a cgroup).
HTTP_VS_NGINX_FLAGS ?=
.PHONY: http-vs-nginx
http-vs-nginx: build/release/build.ninja
	@bash scripts/setup.sh --http-bench
	$(if $(wildcard examples/http_server),cmake --build build/release -j $(JOBS) --target aem_http_server)
	python3 scripts/http_vs_nginx.py --aem-server build/release/examples/aem_http_server $(HTTP_VS_NGINX_FLAGS)

# HTTPS against nginx (scripts/https_vs_nginx.py): keep-alive GET /hello and a new TLS
# connection per request, the same certificate and cipher, each server on core 0, wrk on core 1.
.PHONY: https-vs-nginx
https-vs-nginx: build/release/build.ninja
	@bash scripts/setup.sh --http-bench
	cmake --build build/release -j $(JOBS) --target aem_http_server
	python3 scripts/https_vs_nginx.py --aem-server build/release/examples/aem_http_server $(HTTPS_VS_NGINX_FLAGS)

# aarch64: cross-compiles the library and
# the unit tests with Debian's aarch64 cross compiler against the arm64 multiarch packages
# (scripts/setup.sh --cross-aarch64; toolchain: cmake/toolchains/aarch64-linux-gnu.cmake), so
# capsules switch with Boost.Context's fcontext, then runs the unit label under qemu-user (the
# toolchain's CMAKE_CROSSCOMPILING_EMULATOR). qemu-user 7.2 does not emulate io_uring_setup
# (ENOSYS): every runtime there takes the epoll fallback. On 2 cores: about 6 min of build and
# 1 min of tests, one at a time (emulated timing is loose enough without a neighbour). QEMU_UNIT_EXCLUDE names the test cases that cannot work under qemu-user (the
# reasons are printed); empty it to run them too.
QEMU_UNIT_EXCLUDE ?= arena: default configuration is 64 MiB with 64 B blocks, heap zone pre-faulted|backend selection: automatic falls back to epoll where seccomp refuses io_uring_setup|idle spin: a core that sleeps longer than the limit stops polling|capsule pool: when mappings run out the error names vm.max_map_count|diag: a capsule spinning 500 ms past a 100 ms threshold
.PHONY: test-aarch64
test-aarch64:
	@bash scripts/setup.sh --cross-aarch64
	cmake -S . -B build/aarch64 -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DCMAKE_TOOLCHAIN_FILE=$(CURDIR)/cmake/toolchains/aarch64-linux-gnu.cmake \
	  -DAEM_BUILD_BENCH=OFF -DAEM_BUILD_EXAMPLES=OFF -DAEM_WERROR=ON $(CMAKE_FLAGS)
	cmake --build build/aarch64 -j $(JOBS) --target aem aem_unit_tests
	@echo "test-aarch64: running the unit label under $$(sed -n 's/^CMAKE_CROSSCOMPILING_EMULATOR:[A-Z]*=//p' build/aarch64/CMakeCache.txt | tr ';' ' ') (io_uring is not emulated: epoll backend)"
	@if [ -n "$(QEMU_UNIT_EXCLUDE)" ]; then \
	  echo "test-aarch64: not run under qemu-user (they cannot work there):"; \
	  echo "  - arena: default configuration ... pre-faulted: qemu-user accepts madvise(MADV_POPULATE_WRITE) and does nothing, so no page is resident"; \
	  echo "  - backend selection: ... seccomp refuses io_uring_setup: qemu-user cannot install the test's seccomp filter"; \
	  echo "  - idle spin: ... stops polling: it compares sleeps with a 20 us poll window, which emulation stretches past recognition"; \
	  echo "  - capsule pool: when mappings run out ...: its RLIMIT_AS cap binds qemu-user's own allocations too, which can abort qemu before the guest's mmap fails"; \
	  echo "  - diag: a capsule spinning 500 ms ...: qemu-user delivers the stall signal to a spinning thread only after the spin has ended, so no backtrace can be taken"; \
	fi
	cd build/aarch64 && ctest -j 1 --output-on-failure -L unit $(if $(QEMU_UNIT_EXCLUDE),-E '$(QEMU_UNIT_EXCLUDE)')
