#!/usr/bin/env python3
"""load_bench.py — the load benchmark of issue 4 (method: bench/load/README.md).

For each server (epoll baseline, thread per connection, aem capsule style, aem registration
style, and both aem styles with completion coalescing), each connection count and each client:
start the server pinned to one core, run the client pinned to another (closed-loop ping-pong),
print messages/s, round-trip p50/p99/p999, server CPU time per message and both cores' CPU use,
with ratios to the epoll baseline measured with the same client. Then, per server, the RSS
growth for idle connections.

The two clients are built differently on purpose (bench/load/README.md): "epoll" is
aem_load_client, one thread driving every connection from an edge-triggered epoll loop, which
answers a batch of echoes with a burst of sends; "thread" is aem_thread_load_client, a blocking
thread per connection, each send its own thread's reaction to its echo. A server figure that
holds under one client only is owed to that client's rhythm.

usage: scripts/load_bench.py [--build DIR] [--aem-server PATH] [--connections 100,1000,10000]
                             [--duration S] [--warmup S] [--servers epoll,thread,...] [--repeat N]
                             [--clients epoll,thread] [--idle-connections N | --no-idle]
                             [--json OUT] [--quick]
--repeat N runs every cell N times, the servers in alternating order, and reports each figure
as the median of its N runs: on a shared machine one run can land in a slow spell that
another server's run escapes.
Exit status 1 when any run failed (the table says which and why); targets are reported, not
enforced, because a shared machine cannot judge them.
"""
import argparse
import json
import os
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

# One connection is the latency row: a single ping-pong, nothing to batch.
DEFAULT_CONNECTIONS = [1, 100, 1000, 10000]
DEFAULT_DURATION_S = 10.0
DEFAULT_WARMUP_S = 2.0
DEFAULT_IDLE_CONNECTIONS = 10000
MESSAGE_BYTES = 64
# --quick: proves every program and the script work, measures nothing worth keeping.
QUICK_CONNECTIONS = [10]
QUICK_DURATION_S = 1.0
QUICK_WARMUP_S = 0.5
QUICK_IDLE_CONNECTIONS = 100

SERVER_CORE = 0
CLIENT_CORE = 1
AEM_CORES = 1  # the aem server gets one core, like the baselines
# The "-coalesce" servers run with Config::coalesce_window (echo_server --coalesce-us): after a
# busy stretch the core lets completions accumulate up to this long before it wakes for them.
COALESCE_US = 50

PORT_WAIT_S = 10.0
STOP_WAIT_S = 5.0
# Beyond warm-up + duration, what the client may spend connecting and reporting before the
# script gives up on it (the client's own 30 s --stall-timeout normally fires first).
CLIENT_SLACK_S = 90.0
IDLE_READY_S = 120.0
SETTLE_TIMEOUT_S = 30.0
SETTLE_INTERVAL_S = 0.1
SETTLE_SAMPLES = 3  # RSS unchanged over this many intervals counts as settled
LOG_TAIL_LINES = 15

# The targets: at TARGET_CONNECTIONS, aem against the epoll baseline.
TARGET_CONNECTIONS = 1000
# server -> (server CPU per message, aem / epoll, at most; messages/s, aem / epoll, at least),
# with every client.
TARGETS = {"aem-registration": (0.85, 1.1), "aem-capsule": (1.0, 1.0)}
TARGET_IDLE_BYTES = 2048     # registration style, RSS growth per idle connection, at most
TARGET_IDLE_SERVER = "aem-registration"

BASELINE = "epoll"
# client name -> its binary in BUILD/bench
CLIENTS = {"epoll": "aem_load_client", "thread": "aem_thread_load_client"}
IDLE_CLIENT = "epoll"  # only it can hold connections open and silent (--idle)


class BenchError(Exception):
    pass


def pin_cores(server_core, client_core):
    """Moves where every later Server and client is pinned (SERVER_CORE, CLIENT_CORE): a
    process allowed only one CPU (scripts/demo.py degrades to that) runs both on it."""
    global SERVER_CORE, CLIENT_CORE
    SERVER_CORE, CLIENT_CORE = server_core, client_core


def server_table(build, aem_server):
    """name -> (binary, argv after the binary without the port)."""
    bench = os.path.join(build, "bench")
    return {
        "epoll": (os.path.join(bench, "aem_epoll_echo_server"), []),
        "thread": (os.path.join(bench, "aem_thread_echo_server"), []),
        "aem-capsule": (aem_server, ["--style", "capsule", "--cores", str(AEM_CORES)]),
        "aem-registration": (aem_server, ["--style", "registration", "--cores", str(AEM_CORES)]),
        "aem-capsule-coalesce": (aem_server, ["--style", "capsule", "--cores", str(AEM_CORES),
                                              "--coalesce-us", str(COALESCE_US)]),
        "aem-registration-coalesce": (aem_server, ["--style", "registration", "--cores", str(AEM_CORES),
                                                   "--coalesce-us", str(COALESCE_US)]),
    }


def same_memory_as(name):
    """The server whose idle memory `name`'s is (coalescing changes how a core sleeps, not what
    a connection holds): measured once."""
    return name.removesuffix("-coalesce")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log_tail(path):
    with open(path, errors="replace") as f:
        lines = f.read().splitlines()[-LOG_TAIL_LINES:]
    return "\n".join("    | " + line for line in lines)


class Server:
    """One server process pinned to SERVER_CORE, its output in a temporary log. By default it is
    started as `binary --port P extra...`; `make_argv(port)` replaces that command line for
    servers that take their port another way (nginx reads it from its configuration)."""

    def __init__(self, name, binary, extra, make_argv=None):
        self.name = name
        self.port = free_port()
        self.log = tempfile.NamedTemporaryFile(prefix=f"load_bench_{name}_", suffix=".log", delete=False)
        argv = make_argv(self.port) if make_argv else [binary, "--port", str(self.port)] + extra
        cmd = ["taskset", "-c", str(SERVER_CORE)] + argv
        # taskset execs the server, so the pid is the server's own (its /proc is what we read).
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.tail = ""
        try:
            self.wait_for_port()
        except BaseException:
            self.stop()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def fail(self, what):
        self.stop()
        raise BenchError(f"{self.name}: {what}\n{self.tail}")

    def alive(self):
        return self.proc.poll() is None

    def wait_for_port(self):
        deadline = time.monotonic() + PORT_WAIT_S
        while time.monotonic() < deadline:
            if not self.alive():
                self.fail(f"exited with status {self.proc.returncode} before listening on port {self.port}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(SETTLE_INTERVAL_S)
        self.fail(f"not listening on port {self.port} after {PORT_WAIT_S:.0f} s")

    def status_field(self, field):
        """The leading number of /proc/PID/status's `field` line (VmRSS, VmHWM: KiB; Threads)."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        raise BenchError(f"{self.name}: no {field} in /proc/{self.proc.pid}/status")

    def rss_bytes(self):
        return self.status_field("VmRSS") * 1024

    def fd_count(self):
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def accept_queue(self):
        """Connections the kernel completed but the server has not accepted yet: for a listening
        socket, /proc/net/tcp's rx_queue is the accept-queue length."""
        port_hex = f"{self.port:04X}"
        with open("/proc/net/tcp") as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if fields[1].endswith(":" + port_hex) and fields[3] == "0A":
                    return int(fields[4].split(":")[1], 16)
        return 0

    def settle(self):
        """Waits until nothing is left to accept and RSS stopped moving: an io_uring server may
        accept asynchronously or hold connections as fixed files that /proc/PID/fd cannot show,
        so memory that stopped growing is the signal that works for every server."""
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        history = []
        while time.monotonic() < deadline:
            if not self.alive():
                self.fail(f"exited with status {self.proc.returncode}")
            history = (history + [self.rss_bytes()])[-SETTLE_SAMPLES:]
            if len(history) == SETTLE_SAMPLES and len(set(history)) == 1 and self.accept_queue() == 0:
                return history[-1]
            time.sleep(SETTLE_INTERVAL_S)
        self.fail(f"RSS still changing or accept queue not empty after {SETTLE_TIMEOUT_S:.0f} s")

    def stop(self):
        """Idempotent; keeps the log's tail for error messages and deletes the log."""
        if self.log.closed:
            return
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                print(f"  {self.name}: no exit {STOP_WAIT_S:.0f} s after SIGTERM, killing it", file=sys.stderr)
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        self.tail = log_tail(self.log.name)
        os.unlink(self.log.name)


def client_cmd(client, port, extra):
    return ["taskset", "-c", str(CLIENT_CORE), client, "--port", str(port),
            "--message-size", str(MESSAGE_BYTES)] + extra


def json_events(text):
    events = {}
    for line in text.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            events[record.get("event")] = record
    return events


def measure(client, server, connections, duration, warmup):
    """One cell: the client samples the server's CPU time itself (--server-pid) at the edges of
    its measured window, so the sample and the window coincide to the microsecond."""
    cmd = client_cmd(client, server.port, ["--connections", str(connections), "--duration", str(duration),
                                           "--warmup", str(warmup), "--server-pid", str(server.proc.pid)])
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=warmup + duration + CLIENT_SLACK_S)
    except subprocess.TimeoutExpired:
        server.fail(f"client still running {warmup + duration + CLIENT_SLACK_S:.0f} s after start")
    if done.returncode != 0:
        server.fail(f"client failed ({done.returncode}): {done.stderr.strip()}")
    result = json_events(done.stdout).get("result")
    if result is None:
        server.fail(f"client printed no result: {done.stdout.strip()!r}")
    messages = result["messages"]
    if messages == 0:
        server.fail("no message completed in the measured window")
    seconds = result["seconds"]
    result["server_cpu_us_per_msg"] = result["server_cpu_s"] / messages * 1e6
    result["server_cpu_util"] = result["server_cpu_s"] / seconds
    result["client_cpu_util"] = result["client_cpu_s"] / seconds
    return result


def read_event(proc, event, timeout):
    """The client's `event` line, or BenchError if it exits or is silent for `timeout`."""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not selector.select(timeout=deadline - time.monotonic()):
                break
            line = proc.stdout.readline()
            if not line:
                proc.wait()
                raise BenchError(f"idle client exited ({proc.returncode}): {proc.stderr.read().strip()}")
            if line.startswith("{") and json.loads(line).get("event") == event:
                return json.loads(line)
    raise BenchError(f"idle client printed no '{event}' line within {timeout:.0f} s")


def measure_idle(client, server, connections):
    """RSS of the server before and after `connections` idle connections, per connection."""
    before = server.settle()
    cmd = client_cmd(client, server.port, ["--idle", "--connections", str(connections)])
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        try:
            ready = read_event(proc, "ready", IDLE_READY_S)
        except BenchError as error:
            server.fail(str(error))
        after = server.settle()
        fds = server.fd_count()
    finally:
        proc.stdin.close()  # the client's signal to let go
        try:
            proc.wait(timeout=STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return {"server": server.name, "connections": connections, "connect_seconds": ready["connect_seconds"],
            "rss_before": before, "rss_after": after, "bytes_per_connection": (after - before) / connections,
            "server_fds": fds}


def check_cores():
    allowed = os.sched_getaffinity(0)
    missing = {SERVER_CORE, CLIENT_CORE} - allowed
    if missing:
        sys.exit(f"load_bench: needs cores {SERVER_CORE} and {CLIENT_CORE}; this process may use {sorted(allowed)}")


def available_servers(args):
    table = server_table(args.build, args.aem_server)
    chosen = {}
    for name in args.servers:
        if name not in table:
            sys.exit(f"load_bench: unknown server '{name}' (known: {', '.join(table)})")
        binary, extra = table[name]
        if os.access(binary, os.X_OK):
            chosen[name] = (binary, extra)
        elif name.startswith("aem-"):
            print(f"load_bench: skipping {name}: no aem echo server at {binary} "
                  f"(build examples/echo_server.cpp or pass --aem-server PATH)", file=sys.stderr)
        else:
            sys.exit(f"load_bench: {binary} missing: build it first "
                     f"(cmake --build {args.build} --target {os.path.basename(binary)})")
    return chosen


def median_result(results):
    """One cell's runs folded into one: every number is the median of the runs' values."""
    folded = dict(results[0])
    for key, value in results[0].items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and key not in ("connections", "message_size"):
            folded[key] = statistics.median(r[key] for r in results)
    folded["runs"] = len(results)
    if len(results) > 1:
        folded["each_run"] = results
    return folded


def ratio(value, base):
    return value / base if base else None


def fmt(value, spec):
    """format(value, spec), or a dash of the same width where there is no value."""
    width = int("".join(c for c in spec.split(".")[0] if c.isdigit()) or 0)
    return "-".rjust(width) if value is None else format(value, spec)


def print_runs(runs, failures):
    base = {(r["client"], r["connections"]): r for r in runs if r["server"] == BASELINE}
    print(f"\n{'server':<26}{'client':>7}{'conns':>7}{'msgs/s':>12}{'p50 us':>10}{'p99 us':>10}{'p999 us':>10}"
          f"{'srv us/msg':>12}{'srv cpu':>9}{'cli cpu':>9}{'rate/epoll':>12}{'cpu/epoll':>11}")
    for r in runs:
        b = base.get((r["client"], r["connections"]))
        r["rate_ratio"] = ratio(r["msgs_per_s"], b and b["msgs_per_s"])
        r["cpu_ratio"] = ratio(r["server_cpu_us_per_msg"], b and b["server_cpu_us_per_msg"])
        print(f"{r['server']:<26}{r['client']:>7}{r['connections']:>7}{r['msgs_per_s']:>12.0f}{r['p50_us']:>10.1f}"
              f"{r['p99_us']:>10.1f}{r['p999_us']:>10.1f}{r['server_cpu_us_per_msg']:>12.3f}"
              f"{r['server_cpu_util']:>8.0%} {r['client_cpu_util']:>8.0%} {fmt(r['rate_ratio'], '>11.2f')} "
              f"{fmt(r['cpu_ratio'], '>10.2f')}")
    for name, connections, reason in failures:
        print(f"{name:<34}{connections:>7}  FAILED: {reason}")
    print("client: epoll = aem_load_client (one epoll loop), thread = aem_thread_load_client (a blocking thread per "
          "connection);\nrate/epoll, cpu/epoll: against the epoll server measured with the same client.")
    print("srv/cli cpu: CPU time over the measured window's wall time; a client near 100% is saturated "
          "and caps msgs/s for every server.")


def print_idle(idle, failures):
    if not idle and not failures:
        return
    print(f"\n{'server':<18}{'idle conns':>11}{'RSS before KiB':>16}{'RSS after KiB':>15}{'bytes/conn':>12}"
          f"{'server fds':>12}")
    for r in idle:
        print(f"{r['server']:<18}{r['connections']:>11}{r['rss_before'] / 1024:>16.0f}{r['rss_after'] / 1024:>15.0f}"
              f"{r['bytes_per_connection']:>12.0f}{r['server_fds']:>12}")
    for name, connections, reason in failures:
        print(f"{name:<18}{connections:>11}  FAILED: {reason}")
    print("bytes/conn: user-space RSS growth per connection; kernel socket memory is not in RSS.")


def print_targets(runs, idle):
    rows = []
    for r in runs:
        if r["server"] in TARGETS and r["connections"] == TARGET_CONNECTIONS:
            cpu_target, rate_target = TARGETS[r["server"]]
            label = f"{r['server']} ({r['client']} client)"
            rows.append((f"{label} cpu/msg vs epoll @{TARGET_CONNECTIONS}", r["cpu_ratio"], "<=", cpu_target))
            rows.append((f"{label} msgs/s vs epoll @{TARGET_CONNECTIONS}", r["rate_ratio"], ">=", rate_target))
    for r in idle:
        if r["server"] == TARGET_IDLE_SERVER:
            rows.append((f"{r['server']} bytes per idle conn", r["bytes_per_connection"], "<=", TARGET_IDLE_BYTES))
    if not rows:
        return
    print(f"\n{'target':<68}{'measured':>10}{'target':>12}  verdict")
    for label, value, op, target in rows:
        met = value is not None and (value <= target if op == "<=" else value >= target)
        verdict = "n/a" if value is None else ("met" if met else "MISSED")
        print(f"{label:<68}{fmt(value, '>10.2f')}{op:>4}{target:>8}  {verdict}")


class Sweep:
    """The connection counts and timings of a sweep, in full and in --quick form."""

    def __init__(self, connections, duration_s, warmup_s):
        self.connections = connections
        self.duration_s = duration_s
        self.warmup_s = warmup_s


def add_sweep_arguments(parser, full):
    """--build, --connections, --duration, --warmup and --quick, as every load script takes them."""
    parser.add_argument("--build", default="build/release", help="CMake build directory (default build/release)")
    parser.add_argument("--connections", help="comma-separated connection counts (default "
                        f"{','.join(str(c) for c in full.connections)})")
    parser.add_argument("--duration", type=float, help=f"measured seconds per run (default {full.duration_s:g})")
    parser.add_argument("--warmup", type=float, help=f"warm-up seconds per run (default {full.warmup_s:g})")
    parser.add_argument("--quick", action="store_true", help="smoke run for CI: few connections, seconds")


def resolve_sweep_arguments(parser, args, full, quick):
    """Replaces the sweep arguments left out with `full`'s values, or `quick`'s under --quick."""
    chosen = quick if args.quick else full
    try:
        args.connections = ([int(c) for c in args.connections.split(",")] if args.connections
                            else chosen.connections)
    except ValueError:
        parser.error(f"--connections wants comma-separated integers, got '{args.connections}'")
    if min(args.connections) < 1:
        parser.error("--connections must be positive")
    args.duration = args.duration or chosen.duration_s
    args.warmup = args.warmup if args.warmup is not None else chosen.warmup_s


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_sweep_arguments(parser, Sweep(DEFAULT_CONNECTIONS, DEFAULT_DURATION_S, DEFAULT_WARMUP_S))
    parser.add_argument("--aem-server", help="aem echo server binary (default BUILD/examples/aem_echo_server)")
    parser.add_argument("--servers", default=",".join(server_table("", "")),
                        help=f"comma-separated, from: {', '.join(server_table('', ''))} (default: all); the "
                        f"-coalesce ones run with --coalesce-us {COALESCE_US}")
    parser.add_argument("--clients", default=",".join(CLIENTS),
                        help=f"comma-separated, from: {', '.join(CLIENTS)} (default: both)")
    parser.add_argument("--idle-connections", type=int, help=f"default {DEFAULT_IDLE_CONNECTIONS}")
    parser.add_argument("--no-idle", action="store_true", help="skip the idle-memory measurement")
    parser.add_argument("--repeat", type=int, default=1, help="runs per cell, servers alternating (default 1)")
    parser.add_argument("--json", help="also write every result here")
    args = parser.parse_args()
    resolve_sweep_arguments(parser, args, Sweep(DEFAULT_CONNECTIONS, DEFAULT_DURATION_S, DEFAULT_WARMUP_S),
                            Sweep(QUICK_CONNECTIONS, QUICK_DURATION_S, QUICK_WARMUP_S))
    args.aem_server = args.aem_server or os.path.join(args.build, "examples", "aem_echo_server")
    args.servers = args.servers.split(",")
    args.clients = args.clients.split(",")
    unknown = [c for c in args.clients if c not in CLIENTS]
    if unknown:
        parser.error(f"unknown client {', '.join(unknown)} (known: {', '.join(CLIENTS)})")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.idle_connections is None:
        args.idle_connections = QUICK_IDLE_CONNECTIONS if args.quick else DEFAULT_IDLE_CONNECTIONS
    return args


def main():
    args = parse_args()
    check_cores()
    clients = {}
    for name in sorted(set(args.clients) | ({IDLE_CLIENT} if not args.no_idle else set())):
        clients[name] = os.path.join(args.build, "bench", CLIENTS[name])
        if not os.access(clients[name], os.X_OK):
            sys.exit(f"load_bench: {clients[name]} missing: build it first "
                     f"(cmake --build {args.build} --target {CLIENTS[name]})")
    servers = available_servers(args)

    runs, run_failures = [], []
    for connections in args.connections:
        for client_name in args.clients:
            samples = {name: [] for name in servers}
            for repetition in range(args.repeat):
                order = list(servers.items())
                for name, (binary, extra) in (order if repetition % 2 == 0 else reversed(order)):
                    print(f"running {name} with {connections} connections, {client_name} client"
                          f"{f' ({repetition + 1} of {args.repeat})' if args.repeat > 1 else ''} ...",
                          file=sys.stderr, flush=True)
                    try:
                        with Server(name, binary, extra) as server:
                            samples[name].append(measure(clients[client_name], server, connections, args.duration,
                                                         args.warmup))
                        if args.repeat > 1:
                            r = samples[name][-1]
                            print(f"  {r['msgs_per_s']:.0f} msgs/s, {r['server_cpu_us_per_msg']:.2f} us/msg",
                                  file=sys.stderr, flush=True)
                    except BenchError as error:
                        print(f"  FAILED: {error}", file=sys.stderr)
                        run_failures.append((f"{name} ({client_name})", connections, str(error).splitlines()[0]))
            runs += [{"server": name, "client": client_name, **median_result(results)}
                     for name, results in samples.items() if results]

    idle, idle_failures = [], []
    if not args.no_idle:
        for name, (binary, extra) in servers.items():
            if same_memory_as(name) != name and same_memory_as(name) in servers:
                continue
            print(f"idle memory: {name} with {args.idle_connections} connections ...", file=sys.stderr, flush=True)
            try:
                with Server(name, binary, extra) as server:
                    idle.append(measure_idle(clients[IDLE_CLIENT], server, args.idle_connections))
            except BenchError as error:
                print(f"  FAILED: {error}", file=sys.stderr)
                idle_failures.append((name, args.idle_connections, str(error).splitlines()[0]))

    print(f"\nload benchmark: {MESSAGE_BYTES}-byte ping-pong, server on core {SERVER_CORE}, client on core "
          f"{CLIENT_CORE}, {args.warmup:g} s warm-up + {args.duration:g} s measured per run"
          f"{f', medians of {args.repeat} runs per cell' if args.repeat > 1 else ''}")
    print_runs(runs, run_failures)
    print_idle(idle, idle_failures)
    print_targets(runs, idle)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"message_size": MESSAGE_BYTES, "duration_s": args.duration, "warmup_s": args.warmup, "repeat": args.repeat,
                       "server_core": SERVER_CORE, "client_core": CLIENT_CORE, "runs": runs, "idle": idle,
                       "failures": [{"server": n, "connections": c, "phase": p, "reason": r}
                                    for p, fl in (("run", run_failures), ("idle", idle_failures))
                                    for n, c, r in fl]}, f, indent=2)
    return 1 if run_failures or idle_failures else 0


if __name__ == "__main__":
    sys.exit(main())
