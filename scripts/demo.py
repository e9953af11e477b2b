#!/usr/bin/env python3
"""demo.py — the showcase `make demo` runs: aem against a thread per connection, measured here.

1. The fiber-vs-thread workload (bench/fiber_vs_thread/README.md: a 64-byte request costs 20 µs
   of CPU and a 200 µs backend call, i.e. a sleep) at 100 and 1,000 concurrent connections,
   served by aem with a capsule per connection and by a thread per connection, each pinned to
   one CPU and driven by the closed-loop aem_load_client on another. One table: requests/s,
   p50/p99 latency, the server's CPU share and CPU time per request, peak RSS, threads, and
   aem / threads ratios. The machinery is fiber_vs_thread.py's, with a shorter sweep.
2. examples/aem_demo: a cross-core round trip against two threads and a condition variable,
   and timer handlers by priority on a core flooded with work.

About 30 seconds after the build (more on a busy machine). Where this process may use only one
CPU, server and client share it (said in the output). The load average before the start is
printed, with a caveat when other processes were competing for the CPUs.

usage: scripts/demo.py [--build DIR] [--connections 100,1000] [--duration S] [--warmup S] [--quick]
Exit status: 0 when everything ran, 1 when a measurement failed, 2 on a setup error.
"""
import argparse
import os
import subprocess
import sys

# `make demo` runs from a fresh checkout: leave no __pycache__ beside the scripts.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import load_bench  # noqa: E402
from load_bench import Sweep, add_sweep_arguments, resolve_sweep_arguments  # noqa: E402
from fiber_vs_thread import (DEFAULT_CPU_US, DEFAULT_POOL_THREADS, DEFAULT_SLEEP_US, Progress,  # noqa: E402
                             calibrate, check_binaries, check_descriptors, run_cell, server_table,
                             workload_flags)

DEMO = Sweep(connections=[100, 1000], duration_s=4.0, warmup_s=1.0)
QUICK = Sweep(connections=[10, 100], duration_s=0.5, warmup_s=0.3)
AEM = "aem-capsule"
THREADS = "thread-per-conn"
LABELS = {AEM: "aem, capsule per conn", THREADS: "thread per conn"}
TOUR_TIMEOUT_S = 60
# Load average per usable CPU above which other processes visibly take CPU time from the demo.
BUSY_LOAD_PER_CPU = 0.5
# A saturated server (from 100 connections on, every one here is: 20 µs of CPU per request
# caps it at 50,000 requests/s, and 100 connections ask for up to 450,000) uses its whole CPU;
# less than this share means it lost the CPU to other processes.
LOST_CPU_SHARE = 0.8


def choose_cpus():
    """(server CPU, client CPU, note or None): load_bench's two when allowed, else the first two
    usable, else the single usable CPU for both."""
    allowed = sorted(os.sched_getaffinity(0))
    if {load_bench.SERVER_CORE, load_bench.CLIENT_CORE} <= set(allowed):
        return load_bench.SERVER_CORE, load_bench.CLIENT_CORE, None
    if len(allowed) >= 2:
        return allowed[0], allowed[1], None
    return allowed[0], allowed[0], (f"this process may use CPU {allowed[0]} only: server and client share it,\n"
                                    "   so every server is measured with the client's cost on its CPU")


def load_average():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def ratio(row, base, key):
    return f"{row[key] / base[key]:.2f}x" if base[key] else "-"


def print_sweep(rows):
    print(f"\n{'conns':>6}  {'server':<22}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'srv cpu':>9}{'cpu us/req':>12}"
          f"{'peak RSS MiB':>14}{'threads':>9}")
    for connections in sorted({r["connections"] for r in rows}):
        cell = {r["server"]: r for r in rows if r["connections"] == connections}
        for name in (AEM, THREADS):
            r = cell[name]
            if r["status"] != "ok":
                print(f"{connections:>6}  {LABELS[name]:<22}  {r['status']}")
                continue
            print(f"{connections:>6}  {LABELS[name]:<22}{r['requests_per_s']:>9,.0f}{r['p50_us'] / 1e3:>9.2f}"
                  f"{r['p99_us'] / 1e3:>9.2f}{r['server_cpu_util']:>9.0%}{r['server_cpu_us_per_request']:>12.1f}"
                  f"{r['hwm_kib'] / 1024:>14.1f}{r['threads']:>9}")
        a, t = cell[AEM], cell[THREADS]
        if a["status"] == "ok" and t["status"] == "ok":
            print(f"{'':>6}  {'aem / threads':<22}{ratio(a, t, 'requests_per_s'):>9}{ratio(a, t, 'p50_us'):>9}"
                  f"{ratio(a, t, 'p99_us'):>9}{'':>9}{ratio(a, t, 'server_cpu_us_per_request'):>12}"
                  f"{ratio(a, t, 'hwm_kib'):>14}")
    print("srv cpu: the share of its CPU the server got over the measured window; cpu us/req: its CPU time per "
          "request,\nwhich compares the servers fairly even when they got different shares. Peak RSS: VmHWM.")


def print_caveats(rows, load_before, cpus, shared):
    """A caveat when the machine was busy: the numbers then measure the machine as much as aem.
    `shared`: server and client ran on one CPU, so a server could get only about half of it."""
    shares = [r["server_cpu_util"] for r in rows if r["status"] == "ok"]
    starved = shares and min(shares) < LOST_CPU_SHARE / (2 if shared else 1)
    if load_before > BUSY_LOAD_PER_CPU * cpus or starved:
        lowest = ""
        if shares:
            spread = f"{min(shares):.0%}" + (f"-{max(shares):.0%}" if max(shares) - min(shares) >= 0.005 else "")
            lowest = f"; the servers got {spread} of their CPU"
        print(f"caveat: the load average was {load_before:.2f} on {cpus} usable CPU(s) before the demo started"
              f"{lowest}.\nOther processes competed for the CPUs, so requests/s and latency measure this machine as "
              "much as the servers;\ncpu us/req is the column that stays comparable.")


def prepare_sweep(args, server_cpu):
    """(servers, client, workload flags) for part 1, after checking that the programs exist and
    calibrating the spin; exits with status 2 (and a message) when something is missing."""
    table = server_table(args.build, DEFAULT_POOL_THREADS)
    client = os.path.join(args.build, "bench", "aem_load_client")
    check_binaries({name: table[name] for name in (AEM, THREADS)}, args.build, client)
    check_descriptors(max(args.connections))
    spin_per_us = calibrate(table[THREADS][0], server_cpu)
    return table, client, workload_flags(args.cpu_us, args.sleep_us, spin_per_us)


def run_sweep(args, table, client, workload):
    """The cells of part 1, aem and threads alternating per connection count."""
    progress = Progress(len(args.connections) * 2)
    rows = []
    for connections in args.connections:
        for name in (AEM, THREADS):
            binary, extra = table[name]
            progress.begin(LABELS[name], connections)
            rows.append(run_cell(name, binary, extra + workload, client, connections, args))
            progress.end(rows[-1])
    return rows


def tour_binary(build):
    """examples/aem_demo's path; exits with status 2 when it is not built."""
    binary = os.path.join(build, "examples", "aem_demo")
    if not os.access(binary, os.X_OK):
        print(f"demo: {binary} missing: build it first (cmake --build {build} --target aem_demo)", file=sys.stderr)
        sys.exit(2)
    return binary


def run_tour(binary):
    """Part 2, examples/aem_demo, its output passed through. Returns its exit status."""
    print("[tour] aem_demo: cross-core round trips, priorities under a flood ...", file=sys.stderr, flush=True)
    sys.stdout.flush()
    try:
        return subprocess.run([binary], timeout=TOUR_TIMEOUT_S).returncode
    except subprocess.TimeoutExpired:
        print(f"demo: aem_demo still running after {TOUR_TIMEOUT_S} s", file=sys.stderr)
        return 1


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_sweep_arguments(parser, DEMO)
    args = parser.parse_args()
    resolve_sweep_arguments(parser, args, DEMO, QUICK)
    args.cpu_us, args.sleep_us = DEFAULT_CPU_US, DEFAULT_SLEEP_US
    return args


def main():
    args = parse_args()
    load_before = load_average()
    server_cpu, client_cpu, note = choose_cpus()
    load_bench.pin_cores(server_cpu, client_cpu)
    cpus = len(os.sched_getaffinity(0))
    tour_path = tour_binary(args.build)
    table, client, workload = prepare_sweep(args, server_cpu)

    print(f"aem demo on {os.cpu_count()} CPU(s), {cpus} usable; load average {load_before:.2f} before the start")
    print(f"\n1. Each 64-byte request costs {args.cpu_us} µs of CPU and a {args.sleep_us} µs backend call (a sleep); "
          f"one server\n   at a time on CPU {server_cpu}, the closed-loop client (one request in flight per connection) "
          f"on CPU {client_cpu};\n   {args.warmup:g} s warm-up + {args.duration:g} s measured per cell")
    if note:
        print(f"   note: {note}")
    sys.stdout.flush()
    rows = run_sweep(args, table, client, workload)
    print_sweep(rows)
    print_caveats(rows, load_before, cpus, shared=server_cpu == client_cpu)

    print("\n2. The runtime itself (examples/aem_demo)")
    tour_status = run_tour(tour_path)

    failed = [r for r in rows if r["status"] != "ok"]
    if failed or tour_status != 0:
        what = [f"{len(failed)} of {len(rows)} sweep cells failed (see the table)"] if failed else []
        what += [f"aem_demo exited with status {tour_status}"] if tour_status != 0 else []
        print(f"\ndemo: FAILED: {'; '.join(what)}", file=sys.stderr)
        return 1
    print("\nEverything above was measured just now on this machine. The full sweep (10 to 10,000 connections,\n"
          "four servers, plots): make fiber-vs-thread")
    return 0


if __name__ == "__main__":
    sys.exit(main())
