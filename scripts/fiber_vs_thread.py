#!/usr/bin/env python3
"""fiber_vs_thread.py — the comparison aem exists for (method: bench/fiber_vs_thread/README.md).

The same request workload (a CPU spin and a sleep standing for a backend call, then the reply)
served by aem with a capsule per connection, aem with on_accept/on_data registrations, a thread
per connection, and a fixed thread pool behind epoll; swept over concurrent connections. Each
server is pinned to one core and bench/load's closed-loop client to the other. Writes
results.csv and three gnuplot PNGs (throughput, latency, memory) to --out, prints a table and
the issue's target verdict at 1,000 connections.

usage: scripts/fiber_vs_thread.py [--build DIR] [--out DIR] [--quick] [--connections 10,100,...]
                                  [--cpu-us N] [--sleep-us N] [--servers a,b] [--no-plots]
Exit status: 0 when every cell ran, 1 when one failed (the table says which), 2 on a usage or
setup error, 77 when this machine cannot run it (fewer than two usable cores).
"""
import argparse
import csv
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from load_bench import (CLIENT_CORE, SERVER_CORE, BenchError, Server, Sweep, add_sweep_arguments,  # noqa: E402
                        measure, resolve_sweep_arguments)
from fvt_plots import render_plots  # noqa: E402

FULL = Sweep(connections=[10, 100, 1000, 10000], duration_s=6.0, warmup_s=2.0)
QUICK = Sweep(connections=[10, 100], duration_s=0.5, warmup_s=0.3)
# 20 µs of CPU and a 200 µs backend call per request: a small service whose requests mostly
# wait, the case threads are said to handle well enough and fibers are meant to handle better.
DEFAULT_CPU_US = 20
DEFAULT_SLEEP_US = 200
DEFAULT_POOL_THREADS = 64
# Descriptors a process needs besides its connections (stdio, epoll, signalfd, listener, ...).
SPARE_FDS = 64
EXIT_SKIP = 77
SAMPLE_INTERVAL_S = 0.25

# The target at TARGET_CONNECTIONS, each aem style against thread-per-connection.
TARGET_CONNECTIONS = 1000
TARGET_BASELINE = "thread-per-conn"
TARGET_P99_RATIO = 0.5         # p99 latency, aem / threads, at most
TARGET_THROUGHPUT_RATIO = 1.5  # requests/s, aem / threads, at least

CSV_FIELDS = ["server", "connections", "status", "requests_per_s", "p50_us", "p99_us", "p999_us", "max_us",
              "server_cpu_util", "client_cpu_util", "server_cpu_us_per_request", "rss_kib", "hwm_kib", "threads", "cpu_us", "sleep_us"]


def server_table(build, pool_threads):
    """name -> (binary, style arguments); the workload flags are added per run."""
    bench = os.path.join(build, "bench")
    return {
        "aem-capsule": (os.path.join(bench, "aem_work_server"), ["--style", "capsule"]),
        "aem-registration": (os.path.join(bench, "aem_work_server"), ["--style", "registration"]),
        "thread-per-conn": (os.path.join(bench, "aem_thread_echo_server"), []),
        "thread-pool": (os.path.join(bench, "aem_pool_work_server"), ["--threads", str(pool_threads)]),
    }


def fail_setup(message):
    print(f"fiber_vs_thread: {message}", file=sys.stderr)
    sys.exit(2)


def check_machine(max_connections):
    allowed = os.sched_getaffinity(0)
    if not {SERVER_CORE, CLIENT_CORE} <= allowed:
        print(f"fiber_vs_thread: needs cores {SERVER_CORE} and {CLIENT_CORE}; this process may use "
              f"{sorted(allowed)}: skipped", file=sys.stderr)
        sys.exit(EXIT_SKIP)
    check_descriptors(max_connections)


def check_descriptors(max_connections):
    """Exits with a usage error unless server and client can each open `max_connections`."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < max_connections + SPARE_FDS:
        fail_setup(f"{max_connections} connections need {max_connections + SPARE_FDS} descriptors per process; "
                   f"the hard RLIMIT_NOFILE is {hard} (raise it with ulimit -Hn or use fewer --connections)")


def check_binaries(table, build, client):
    for path in sorted({binary for binary, _ in table.values()} | {client}):
        if not os.access(path, os.X_OK):
            fail_setup(f"{path} missing: build it first (make fiber-vs-thread, or cmake --build {build} "
                       f"--target {os.path.basename(path)})")


def calibrate(binary, core):
    """Spin iterations per microsecond, measured once on the server's `core` and given to every
    server, so all of them burn the same instructions per request."""
    done = subprocess.run(["taskset", "-c", str(core), binary, "--calibrate"], capture_output=True,
                          text=True, timeout=60)
    if done.returncode != 0:
        fail_setup(f"calibration failed ({done.returncode}): {done.stderr.strip()}")
    return json.loads(done.stdout)["spin_per_us"]


def workload_flags(cpu_us, sleep_us, spin_per_us):
    """The flags that give every server the same work per request."""
    return ["--cpu-us", str(cpu_us), "--sleep-us", str(sleep_us), "--spin-per-us", f"{spin_per_us:.3f}"]


def format_duration(seconds):
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"


class Progress:
    """One line per cell on stderr: position, elapsed time and an estimate of what is left."""

    def __init__(self, total):
        self.total = total
        self.done = 0
        self.started = time.monotonic()

    def begin(self, name, connections):
        elapsed = time.monotonic() - self.started
        left = f", ~{format_duration(elapsed / self.done * (self.total - self.done))} left" if self.done else ""
        print(f"[{self.done + 1:>2}/{self.total} {format_duration(elapsed)} elapsed{left}] {name}, "
              f"{connections} connections ...", file=sys.stderr, flush=True)

    def end(self, row):
        self.done += 1
        if row["status"] == "ok":
            print(f"      {row['requests_per_s']:,.0f} req/s, p99 {row['p99_us'] / 1000:.2f} ms, "
                  f"peak RSS {row['hwm_kib'] / 1024:.1f} MiB", file=sys.stderr, flush=True)
        else:
            print(f"      {row['status']}", file=sys.stderr, flush=True)


class PeakSampler:
    """Samples the server's VmRSS and thread count every SAMPLE_INTERVAL_S while the client runs,
    keeping the largest: at the end the client has gone and a thread server has lost its
    connection threads, so only samples taken with the connections open say what they cost."""

    def __init__(self, server):
        self.server = server
        self.rss_kib = 0
        self.threads = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.thread.join()

    def run(self):
        while True:
            try:
                self.rss_kib = max(self.rss_kib, self.server.status_field("VmRSS"))
                self.threads = max(self.threads, self.server.status_field("Threads"))
            except (OSError, BenchError):
                return  # the server is gone; the cell reports why
            if self.stopping.wait(SAMPLE_INTERVAL_S):
                return


def run_cell(name, binary, extra, client, connections, args):
    """Starts a fresh server, measures one closed-loop run while sampling the server's memory,
    and stops it."""
    row = {"server": name, "connections": connections, "cpu_us": args.cpu_us, "sleep_us": args.sleep_us}
    try:
        with Server(name, binary, extra) as server:
            with PeakSampler(server) as peak:
                result = measure(client, server, connections, args.duration, args.warmup)
            row.update(rss_kib=peak.rss_kib, hwm_kib=server.status_field("VmHWM"), threads=peak.threads)
    except BenchError as error:
        row["status"] = "failed: " + str(error).splitlines()[0]
        return row
    row.update(status="ok", requests_per_s=result["msgs_per_s"], p50_us=result["p50_us"], p99_us=result["p99_us"],
               p999_us=result["p999_us"], max_us=result["max_us"], server_cpu_util=result["server_cpu_util"],
               client_cpu_util=result["client_cpu_util"], server_cpu_us_per_request=result["server_cpu_us_per_msg"])
    return row


def write_csv(path, rows):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in row.items()})


def print_table(rows):
    print(f"\n{'server':<18}{'conns':>7}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'p999 ms':>9}{'srv cpu':>9}"
          f"{'cli cpu':>9}{'cpu us/req':>11}{'RSS MiB':>9}{'HWM MiB':>9}{'threads':>9}")
    for r in rows:
        if r["status"] != "ok":
            print(f"{r['server']:<18}{r['connections']:>7}  {r['status']}")
            continue
        print(f"{r['server']:<18}{r['connections']:>7}{r['requests_per_s']:>10.0f}{r['p50_us'] / 1e3:>9.2f}"
              f"{r['p99_us'] / 1e3:>9.2f}{r['p999_us'] / 1e3:>9.2f}{r['server_cpu_util']:>8.0%} "
              f"{r['client_cpu_util']:>8.0%} {r['server_cpu_us_per_request']:>10.1f} {r['rss_kib'] / 1024:>8.1f} {r['hwm_kib'] / 1024:>8.1f}"
              f"{r['threads']:>9}")
    print("srv/cli cpu: each side's CPU time over the measured window; a server far below 100% at high "
          "concurrency lost its core to another process.\ncpu us/req: the server's CPU time per request, which "
          "compares servers fairly even when they got different shares of their core.\nRSS, threads: largest sample while the client ran; "
          "HWM: the server's peak RSS (VmHWM).")


def print_targets(rows):
    ok = {(r["server"], r["connections"]): r for r in rows if r["status"] == "ok"}
    base = ok.get((TARGET_BASELINE, TARGET_CONNECTIONS))
    lines = []
    for name in ("aem-capsule", "aem-registration"):
        r = ok.get((name, TARGET_CONNECTIONS))
        if r is None or base is None:
            continue
        lines.append((f"{name} p99 / {TARGET_BASELINE} p99", r["p99_us"] / base["p99_us"], "<=", TARGET_P99_RATIO))
        lines.append((f"{name} req/s / {TARGET_BASELINE} req/s", r["requests_per_s"] / base["requests_per_s"], ">=",
                      TARGET_THROUGHPUT_RATIO))
    if not lines:
        return
    print(f"\ntargets at {TARGET_CONNECTIONS} connections (reported, not enforced: a shared machine cannot judge them)")
    for label, value, op, target in lines:
        met = value <= target if op == "<=" else value >= target
        print(f"  {label:<48}{value:>8.2f} {op} {target:<5} {'met' if met else 'MISSED'}")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_sweep_arguments(parser, FULL)
    parser.add_argument("--out", help="where results.csv and the PNGs go (default BUILD/fiber_vs_thread)")
    parser.add_argument("--cpu-us", type=int, default=DEFAULT_CPU_US, help="CPU spin per request, µs")
    parser.add_argument("--sleep-us", type=int, default=DEFAULT_SLEEP_US, help="sleep (backend call) per request, µs")
    parser.add_argument("--pool-threads", type=int, default=DEFAULT_POOL_THREADS, help="thread-pool server's workers")
    parser.add_argument("--servers", default="aem-capsule,aem-registration,thread-per-conn,thread-pool")
    parser.add_argument("--no-plots", action="store_true", help="write the CSV only (no gnuplot needed)")
    args = parser.parse_args()
    resolve_sweep_arguments(parser, args, FULL, QUICK)
    if args.cpu_us < 0 or args.sleep_us < 0 or args.pool_threads < 1:
        parser.error("--cpu-us and --sleep-us must be non-negative, --pool-threads positive")
    args.out = args.out or os.path.join(args.build, "fiber_vs_thread")
    args.servers = args.servers.split(",")
    return args


def main():
    args = parse_args()
    table = server_table(args.build, args.pool_threads)
    unknown = [name for name in args.servers if name not in table]
    if unknown:
        fail_setup(f"unknown server {', '.join(unknown)} (known: {', '.join(table)})")
    client = os.path.join(args.build, "bench", "aem_load_client")
    check_machine(max(args.connections))
    check_binaries({name: table[name] for name in args.servers}, args.build, client)
    if not args.no_plots and shutil.which("gnuplot") is None:
        fail_setup("gnuplot not found: install gnuplot-nox, or pass --no-plots")
    os.makedirs(args.out, exist_ok=True)

    spin_per_us = calibrate(table["thread-per-conn"][0], SERVER_CORE)
    workload = workload_flags(args.cpu_us, args.sleep_us, spin_per_us)
    print(f"fiber_vs_thread: {args.cpu_us} µs CPU + {args.sleep_us} µs sleep per 64-byte request "
          f"({spin_per_us:.0f} spin iterations/µs), {args.warmup:g} s warm-up + {args.duration:g} s per cell, "
          f"server on core {SERVER_CORE}, client on core {CLIENT_CORE}", file=sys.stderr)

    csv_path = os.path.join(args.out, "results.csv")
    progress = Progress(len(args.connections) * len(args.servers))
    rows = []
    for connections in args.connections:
        for name in args.servers:
            binary, extra = table[name]
            progress.begin(name, connections)
            rows.append(run_cell(name, binary, extra + workload, client, connections, args))
            progress.end(rows[-1])
            write_csv(csv_path, rows)  # after every cell, so an interrupted sweep keeps its results

    print_table(rows)
    print_targets(rows)
    print(f"\nCSV: {csv_path}")
    if not args.no_plots:
        for path in render_plots(args.out, rows, f"{args.cpu_us} µs CPU + {args.sleep_us} µs sleep per request"):
            print(f"plot: {path}")
    return 1 if any(r["status"] != "ok" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
