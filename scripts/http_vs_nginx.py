#!/usr/bin/env python3
"""http_vs_nginx.py — aem's HTTP server against nginx, measured by wrk and by h2load on loopback.

Both servers answer GET /hello with the same body and Content-Type over keep-alive
connections: aem_http_server (examples/http_server) on one aem core, and nginx (Debian
nginx-light) with one worker, the access log off, and a configuration generated into a
temporary prefix directory (no system configuration is read or touched). Each server is pinned
to core 0 and wrk to core 1, 100 connections, a few repetitions alternating which server runs
first; the script prints requests/s and latency for both, each the median of the repetitions,
and aem / nginx ratios; then the req/s ratio within each repetition (the two runs back to back),
which a machine whose speed drifts from minute to minute disturbs least. It does so with each
client of --clients: wrk (one thread, Lua-driven event loop) and h2load from nghttp2
(`h2load --h1`, its own libev loop), two independent HTTP/1.1 load generators whose figures
must agree before either is believed.

On a 2-core machine wrk on its one core is the limit before either server is (neither reaches
100 % CPU), so requests/s cannot tell the servers apart. --server-cpu F puts each server in a
cgroup that holds it to F of its core (root and a cgroup cpu controller, v1 or v2, needed): then
the server is the limit, and requests/s compares what each serves with the same CPU. The quota
is the kernel's smallest, 1 ms, per 1/F ms (2 ms at F = 0.5; --quota-period-us sets a longer
period): the server then stands for a core that is F times as fast. Over a long period it would
instead run at full speed for F of the period, outpace wrk (the limit again) while it does, and
stop for the rest.

usage: scripts/http_vs_nginx.py [--aem-server PATH] [--nginx PATH] [--wrk PATH] [--h2load PATH]
                                [--clients wrk,h2load] [--connections N]
                                [--duration S] [--repeat N] [--aem-cores N] [--aem-style S]
                                [--aem-coalesce-us N] [--server-cpu F] [--quota-period-us P] [--quick]
Exit status: 0 when every run succeeded, 1 when one failed, 2 when a tool or binary is missing,
77 when this machine has fewer than two usable cores.
"""
import argparse
import http.client
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from load_bench import CLIENT_CORE, SERVER_CORE, BenchError, Server  # noqa: E402

PATH = "/hello"
BODY = b"Hello, World!\n"
DEFAULT_CONNECTIONS = 100
DEFAULT_DURATION_S = 10
DEFAULT_REPEAT = 3
QUICK_DURATION_S = 2
QUICK_REPEAT = 1
WRK_SLACK_S = 60
CHECK_TIMEOUT_S = 5
EXIT_SKIP = 77

# One worker, no access log, keep-alive without a request cap (wrk keeps its connections for
# the whole run; nginx's default of 1,000 requests per connection would make it reconnect), and
# every path nginx writes to inside the prefix, so nothing outside it is touched.
NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{
    worker_connections 4096;
}}
http {{
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 65s;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location = {path} {{
            default_type "{content_type}";
            return 200 "{body}";
        }}
    }}
}}
"""

UNIT_SECONDS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def fail_setup(message):
    print(f"http_vs_nginx: {message}", file=sys.stderr)
    sys.exit(2)


def find_tool(given, name, package):
    path = given or shutil.which(name) or (f"/usr/sbin/{name}" if os.access(f"/usr/sbin/{name}", os.X_OK) else None)
    if not path or not os.access(path, os.X_OK):
        fail_setup(f"{name} not found{f' at {given}' if given else ''}: install the Debian package {package}")
    return path


def fetch(port):
    """GET PATH once: (status, body, Content-Type) — proves a server answers what is measured."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=CHECK_TIMEOUT_S)
    try:
        connection.request("GET", PATH)
        response = connection.getresponse()
        return response.status, response.read(), response.getheader("Content-Type", "")
    finally:
        connection.close()


def check_answer(server):
    try:
        status, body, content_type = fetch(server.port)
    except (OSError, http.client.HTTPException) as error:
        server.fail(f"GET {PATH} failed: {error}")
    if status != 200 or body != BODY:
        server.fail(f"GET {PATH} answered {status} {body!r}, expected 200 {BODY!r}")
    return content_type


def nginx_argv(nginx, prefix, content_type):
    """make_argv for Server: writes the configuration for the port Server picked."""
    def make(port):
        escaped = BODY.decode().replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        with open(os.path.join(prefix, "nginx.conf"), "w") as f:
            f.write(NGINX_CONF.format(prefix=prefix, port=port, path=PATH, content_type=content_type, body=escaped))
        return [nginx, "-p", prefix, "-e", os.path.join(prefix, "error.log"), "-c",
                os.path.join(prefix, "nginx.conf")]
    return make


def seconds(text):
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        raise BenchError(f"unreadable wrk duration '{text}'")
    return float(match.group(1)) * UNIT_SECONDS[match.group(2)]


def parse_wrk(output):
    """Requests/s, latency average and percentiles (ms), and error counts from wrk --latency."""
    result = {}
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    average = re.search(r"^\s+Latency\s+(\S+)", output, re.M)
    if not rate or not average:
        raise BenchError(f"unreadable wrk output:\n{output}")
    result["requests_per_s"] = float(rate.group(1))
    result["avg_ms"] = seconds(average.group(1)) * 1e3
    for percent, value in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", output, re.M):
        result[f"p{percent}_ms"] = seconds(value) * 1e3
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    result["errors"] = (sum(int(n) for n in errors.groups()) if errors else 0) + (int(non_2xx.group(1)) if non_2xx else 0)
    return result


def process_tree(pid):
    """`pid` and its descendants (nginx serves from a worker that its master forked)."""
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as f:
                    todo.extend(int(child) for child in f.read().split())
        except OSError:
            pass  # it exited meanwhile: its time is gone with it, as it would be from any reading
    return pids


def cpu_seconds(pid):
    """User + system CPU time of `pid`'s process tree, in seconds."""
    ticks = 0
    for member in process_tree(pid):
        try:
            with open(f"/proc/{member}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
        except (OSError, IndexError, ValueError):
            pass
    return ticks / os.sysconf("SC_CLK_TCK")


# wrk sends one request per round trip unless a script hands it several at once (pipelining).
PIPELINE_SCRIPT = """
local depth = tonumber(os.getenv("AEM_PIPELINE_DEPTH"))
init = function(args)
  local requests = {}
  for i = 1, depth do requests[i] = wrk.format(nil, "%s") end
  pipelined = table.concat(requests)
end
request = function() return pipelined end
"""


class CpuQuota:
    """A cgroup holding the processes started through wrap() to `fraction` of one CPU."""

    MIN_QUOTA_US = 1000  # the kernel refuses a smaller quota
    MAX_PERIOD_US = 1_000_000  # and a longer period
    V1 = "/sys/fs/cgroup/cpu"
    V2 = "/sys/fs/cgroup"

    @classmethod
    def shortest_period_us(cls, fraction):
        return round(cls.MIN_QUOTA_US / fraction)

    def __init__(self, fraction, period_us=None):
        name = f"aem_http_vs_nginx_{os.getpid()}"
        period_us = period_us or self.shortest_period_us(fraction)
        quota_us = round(fraction * period_us)
        self.describe = f"a quota of {quota_us / 1000:g} ms per {period_us / 1000:g} ms"
        if os.path.exists(os.path.join(self.V1, "cpu.cfs_quota_us")):
            self.path = os.path.join(self.V1, name)
            settings = {"cpu.cfs_period_us": str(period_us), "cpu.cfs_quota_us": str(quota_us)}
        elif "cpu" in self._read(os.path.join(self.V2, "cgroup.subtree_control")).split():
            self.path = os.path.join(self.V2, name)
            settings = {"cpu.max": f"{quota_us} {period_us}"}
        else:
            raise OSError("no cgroup cpu controller (v1 at /sys/fs/cgroup/cpu, or v2 with cpu enabled)")
        os.mkdir(self.path)
        try:
            for key, value in settings.items():
                with open(os.path.join(self.path, key), "w") as f:
                    f.write(value)
        except OSError:
            self.close()
            raise

    @staticmethod
    def _read(path):
        try:
            with open(path) as f:
                return f.read()
        except OSError:
            return ""

    def wrap(self, argv):
        """`argv` run inside the cgroup: the shell moves itself in, then becomes the server (same pid)."""
        return ["sh", "-c", f'echo $$ > {self.path}/cgroup.procs && exec "$@"', "sh"] + argv

    def close(self):
        for _ in range(50):  # the last server's processes may still be leaving
            try:
                os.rmdir(self.path)
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.1)
        print(f"http_vs_nginx: could not remove {self.path}", file=sys.stderr)


def run_load(name, cmd, server, args, parse, env=None):
    """Runs the load client command `cmd` (named `name` in messages) against `server` for
    args.duration seconds and returns `parse(its stdout)` with the server's CPU time over the run
    (server_cpu, a share of one CPU; cpu_us_per_req) and the client's (wrk_cpu)."""
    cpu_before = cpu_seconds(server.proc.pid)
    # The client is the only child reaped during the run (taskset execs it): its CPU time is the
    # children's usage that the run adds.
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=args.duration + WRK_SLACK_S, env=env)
    except subprocess.TimeoutExpired:
        server.fail(f"{name} still running {args.duration + WRK_SLACK_S} s after start")
    cpu = cpu_seconds(server.proc.pid) - cpu_before
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    client_cpu = (children.ru_utime + children.ru_stime) - (children_before.ru_utime + children_before.ru_stime)
    if done.returncode != 0:
        server.fail(f"{name} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
    if not server.alive():
        server.fail(f"exited with status {server.proc.returncode} during the run")
    result = parse(done.stdout)
    result["server_cpu"] = cpu / args.duration
    result["wrk_cpu"] = client_cpu / args.duration
    if result["requests_per_s"] > 0:
        result["cpu_us_per_req"] = cpu / (result["requests_per_s"] * args.duration) * 1e6
    if result["errors"]:
        print(f"  {server.name}: {name} counted {result['errors']} socket errors or failed answers", file=sys.stderr)
    return result


def run_wrk(wrk, server, args):
    cmd = ["taskset", "-c", str(CLIENT_CORE), wrk, "-t1", f"-c{args.connections}", f"-d{args.duration}s",
           "--latency", f"http://127.0.0.1:{server.port}{PATH}"]
    env = dict(os.environ)
    script = None
    if args.pipeline > 1:
        script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
        script.write(PIPELINE_SCRIPT % PATH)
        script.close()
        cmd[5:5] = ["-s", script.name]
        env["AEM_PIPELINE_DEPTH"] = str(args.pipeline)
    try:
        result = run_load("wrk", cmd, server, args, parse_wrk, env)
    finally:
        if script is not None:
            os.unlink(script.name)
    if args.pipeline > 1:
        # wrk times a pipelined batch, not its requests, and reports zeros for some percentiles.
        result = {key: value for key, value in result.items() if not key.endswith("_ms")}
    return result


def parse_h2load(output):
    """Requests/s, mean request time (ms) and failures from h2load's summary."""
    rate = re.search(r"^finished in [\d.]+\w+, ([\d.]+) req/s", output, re.M)
    requests = re.search(r"^requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                         r"(\d+) errored, (\d+) timeout", output, re.M)
    mean = re.search(r"^time for request:\s+\S+\s+\S+\s+(\S+)", output, re.M)
    if not rate or not requests:
        raise BenchError(f"unreadable h2load output:\n{output}")
    result = {"requests_per_s": float(rate.group(1)),
              "errors": int(requests.group(4)) + int(requests.group(5)) + int(requests.group(6))}
    if mean:
        result["avg_ms"] = seconds(mean.group(1)) * 1e3
    return result


def run_h2load(h2load, server, args):
    """h2load --h1 for args.duration seconds (no warm-up phase, like wrk: the server's CPU time
    over the whole run is divided by the requests of the whole run)."""
    cmd = ["taskset", "-c", str(CLIENT_CORE), h2load, "--h1", "-t1", f"-c{args.connections}", "-D",
           str(args.duration), f"http://127.0.0.1:{server.port}{PATH}"]
    if args.pipeline > 1:
        cmd[4:4] = [f"-m{args.pipeline}"]
    return run_load("h2load", cmd, server, args, parse_h2load)


# client name -> (the function that runs it, its Debian package)
CLIENTS = {"wrk": (run_wrk, "wrk"), "h2load": (run_h2load, "nghttp2-client")}


def measure(server, wrk, args, client="wrk"):
    """Checks what `server` answers, then runs `client` (the binary `wrk`) against it: (its
    Content-Type, the client's result)."""
    content_type = check_answer(server)
    return content_type, CLIENTS[client][0](wrk, server, args)


def median_of(runs, key):
    values = [r[key] for r in runs if key in r]
    return statistics.median(values) if values else None


def print_report(results, failures, args, client="wrk"):
    keys = [("requests_per_s", "req/s", "{:>12,.0f}"), ("avg_ms", "avg ms", "{:>9.3f}"), ("p50_ms", "p50 ms", "{:>9.3f}"),
            ("p90_ms", "p90 ms", "{:>9.3f}"), ("p99_ms", "p99 ms", "{:>9.3f}"),
            ("server_cpu", "srv cpu", "{:>9.0%}"), ("cpu_us_per_req", "us/req", "{:>9.2f}"),
            ("wrk_cpu", "cli cpu", "{:>9.0%}")]
    pipelining = f", {args.pipeline} requests pipelined" if args.pipeline > 1 else ""
    quota = f" held to {args.server_cpu:.0%} of it ({args.quota_text})" if args.server_cpu else ""
    client_text = "wrk -t1" if client == "wrk" else "h2load --h1 -t1"
    print(f"\nGET {PATH}, {args.connections} keep-alive connections{pipelining}, {client_text} on core {CLIENT_CORE}, "
          f"server on core {SERVER_CORE}{quota}, {args.duration} s x {args.repeat} (medians)")
    print(f"{'server':<8}" + "".join(f"{label:>12}" if key == "requests_per_s" else f"{label:>9}"
                                     for key, label, _ in keys) + f"{'runs':>6}")
    medians = {}
    for name in ("aem", "nginx"):
        runs = results[name]
        medians[name] = {key: median_of(runs, key) for key, _, _ in keys}
        cells = "".join(("-".rjust(12 if key == "requests_per_s" else 9) if medians[name][key] is None
                         else spec.format(medians[name][key])) for key, _, spec in keys)
        print(f"{name:<8}{cells}{len(runs):>6}")
    ratios = "".join(("-".rjust(12 if key == "requests_per_s" else 9)
                      if medians["aem"][key] is None or not medians["nginx"][key]
                      else ("{:>12.2f}" if key == "requests_per_s" else "{:>9.2f}").format(
                          medians["aem"][key] / medians["nginx"][key])) for key, _, _ in keys)
    print(f"{'aem/ngx':<8}{ratios}")
    # The machine's speed drifts between runs; each repetition runs the two back to back, so the
    # ratio within a repetition is the steadier figure.
    nginx_rate = {r["repetition"]: r["requests_per_s"] for r in results["nginx"] if r["requests_per_s"] > 0}
    pairs = sorted(r["requests_per_s"] / nginx_rate[r["repetition"]] for r in results["aem"]
                   if r["repetition"] in nginx_rate)
    if pairs:
        print(f"req/s aem/nginx within each repetition: median {statistics.median(pairs):.2f}, "
              f"range {pairs[0]:.2f}-{pairs[-1]:.2f}, {len(pairs)} pairs: " + " ".join(f"{p:.2f}" for p in pairs))
    for name, repetition, reason in failures:
        print(f"{name:<8} repetition {repetition}: FAILED: {reason}")
    print("ratios: above 1 in req/s and below 1 in latency or us/req favour aem. srv cpu: the server's CPU time\n"
          "(its whole process tree) over the run's wall time; us/req: that CPU time per request; cli cpu: the\n"
          "client's. When the client is near 100% and neither server is near its limit, it is the limit and\n"
          "req/s cannot tell them apart: us/req still does (nginx us/req / aem us/req is how many times more\n"
          "requests aem serves per CPU second), and --server-cpu makes req/s show it.\n"
          "One busy machine measures noise too: compare on a quiet one.")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--aem-server", default="build/release/examples/aem_http_server",
                        help="aem HTTP server binary (default build/release/examples/aem_http_server)")
    parser.add_argument("--nginx", help="nginx binary (default: from PATH or /usr/sbin)")
    parser.add_argument("--wrk", help="wrk binary (default: from PATH)")
    parser.add_argument("--h2load", help="h2load binary (default: from PATH)")
    parser.add_argument("--clients", default=",".join(CLIENTS),
                        help=f"comma-separated load clients, from: {', '.join(CLIENTS)} (default: both)")
    parser.add_argument("--connections", type=int, default=DEFAULT_CONNECTIONS)
    parser.add_argument("--pipeline", type=int, default=1,
                        help="requests wrk sends at once on each connection (HTTP pipelining; default 1: none)")
    parser.add_argument("--duration", type=int, help=f"seconds per wrk run (default {DEFAULT_DURATION_S})")
    parser.add_argument("--repeat", type=int, help=f"repetitions per server (default {DEFAULT_REPEAT})")
    parser.add_argument("--aem-cores", type=int, default=1, help="aem_http_server --cores (default 1, like nginx)")
    parser.add_argument("--aem-style", help="aem_http_server --style (default: the server's own)")
    parser.add_argument("--aem-coalesce-us", type=int, default=0,
                        help="aem_http_server --coalesce-us (Config::coalesce_window; default 0: off)")
    parser.add_argument("--aem-root", help="aem_http_server --root (default: not passed)")
    parser.add_argument("--server-cpu", type=float,
                        help="hold each server to this fraction of its core (0.1 to 1) with a cgroup CPU quota, "
                        "so that the server and not wrk is the limit (default: no quota)")
    parser.add_argument("--quota-period-us", type=int,
                        help="with --server-cpu: the quota's period in microseconds (default: the shortest the kernel "
                        "allows, a 1 ms quota per 1/F ms; at most 1 s)")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_DURATION_S} s, one repetition: a smoke run")
    args = parser.parse_args()
    args.duration = args.duration or (QUICK_DURATION_S if args.quick else DEFAULT_DURATION_S)
    args.repeat = args.repeat or (QUICK_REPEAT if args.quick else DEFAULT_REPEAT)
    if args.server_cpu is not None and not 0.1 <= args.server_cpu <= 1:
        parser.error("--server-cpu must be between 0.1 and 1")
    if args.quota_period_us is not None:
        if args.server_cpu is None:
            parser.error("--quota-period-us needs --server-cpu")
        shortest = CpuQuota.shortest_period_us(args.server_cpu)
        if not shortest <= args.quota_period_us <= CpuQuota.MAX_PERIOD_US:
            parser.error(f"--quota-period-us must be between {shortest} (a 1 ms quota at --server-cpu "
                         f"{args.server_cpu:g}) and {CpuQuota.MAX_PERIOD_US}")
    args.clients = args.clients.split(",")
    unknown = [c for c in args.clients if c not in CLIENTS]
    if unknown:
        parser.error(f"unknown client {', '.join(unknown)} (known: {', '.join(CLIENTS)})")
    if args.aem_coalesce_us < 0:
        parser.error("--aem-coalesce-us must not be negative")
    if args.connections < 1 or args.duration < 1 or args.repeat < 1 or args.aem_cores < 1:
        parser.error("--connections, --duration, --repeat and --aem-cores must be positive")
    return args


def main():
    args = parse_args()
    if not {SERVER_CORE, CLIENT_CORE} <= os.sched_getaffinity(0):
        print(f"http_vs_nginx: needs cores {SERVER_CORE} and {CLIENT_CORE}: skipped", file=sys.stderr)
        return EXIT_SKIP
    tools = {name: find_tool(getattr(args, name), name, CLIENTS[name][1]) for name in args.clients}
    nginx = find_tool(args.nginx, "nginx", "nginx-light")
    if not os.access(args.aem_server, os.X_OK):
        fail_setup(f"no aem HTTP server at {args.aem_server}: build it (cmake --build build/release --target "
                   f"aem_http_server) or pass --aem-server PATH")
    aem_extra = ["--cores", str(args.aem_cores)]
    aem_extra += ["--style", args.aem_style] if args.aem_style else []
    aem_extra += ["--coalesce-us", str(args.aem_coalesce_us)] if args.aem_coalesce_us else []
    aem_extra += ["--root", args.aem_root] if args.aem_root else []

    quota = None
    if args.server_cpu:
        try:
            quota = CpuQuota(args.server_cpu, args.quota_period_us)
            args.quota_text = quota.describe
        except OSError as error:
            fail_setup(f"--server-cpu needs a cgroup it can make (root): {error}")
    limit = quota.wrap if quota else (lambda argv: argv)
    try:
        status = 0
        for name, tool in tools.items():
            status = max(status, compare(args, tool, nginx, aem_extra, limit, client=name))
        return status
    finally:
        if quota:
            quota.close()


def compare(args, wrk, nginx, aem_extra, limit, client="wrk"):
    """Runs the repetitions with `client` (the binary `wrk`) and prints the report; `limit(argv)`
    is how a server is started."""
    results = {"aem": [], "nginx": []}
    failures = []
    with tempfile.TemporaryDirectory(prefix="http_vs_nginx_") as prefix:
        # nginx answers with the Content-Type aem's server uses, learnt from its first answer.
        content_type = "text/plain"
        for repetition in range(1, args.repeat + 1):
            order = ("aem", "nginx") if repetition % 2 else ("nginx", "aem")
            for name in order:
                print(f"[{repetition}/{args.repeat}] {name}: {client} {args.duration} s, {args.connections} connections ...",
                      file=sys.stderr, flush=True)
                if name == "aem":
                    start = lambda: Server("aem", args.aem_server, [], make_argv=lambda port: limit(  # noqa: E731
                        [args.aem_server, "--port", str(port)] + aem_extra))
                else:
                    start = lambda: Server("nginx", nginx, [], make_argv=lambda port: limit(  # noqa: E731
                        nginx_argv(nginx, prefix, content_type)(port)))
                try:
                    with start() as server:
                        answered_type, result = measure(server, wrk, args, client)
                except BenchError as error:
                    print(f"  FAILED: {error}", file=sys.stderr)
                    failures.append((name, repetition, str(error).splitlines()[0]))
                    continue
                if name == "aem" and answered_type:
                    content_type = answered_type
                result["repetition"] = repetition
                results[name].append(result)
                print(f"      {result['requests_per_s']:,.0f} req/s, server CPU {result['server_cpu']:.0%}",
                      file=sys.stderr, flush=True)
    print_report(results, failures, args, client)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
