#!/usr/bin/env python3
"""https_vs_nginx.py — aem's HTTP server over TLS against nginx, measured by wrk on loopback.

Both servers answer GET /hello over HTTPS with one certificate (an ECDSA P-256 key made for the
run with the openssl program) and the same cipher (TLS 1.3, TLS_AES_256_GCM_SHA384; each server
prefers it and wrk offers it first): aem_http_server --tls-cert/--tls-key on one aem core, and
nginx (Debian nginx-light) with one worker, the access log off, in a temporary prefix (no system
configuration is read). Each server is pinned to core 0, wrk (one thread) to core 1. Two tests:

  keep-alive   wrk -c CONNECTIONS: GET /hello over kept-alive connections: requests/s and the
               server's CPU per request (utime + stime of its process tree from /proc).
  new          wrk -c CONNECTIONS with `Connection: close`: one request per TLS connection, so
               each request pays a full handshake. wrk makes a fresh SSL object per connection
               and never offers a session, and nginx has ssl_session_tickets and its session
               cache off: no resumption on either side (wrk over h2load --h1, whose client
               also starts fresh, because the keep-alive test uses wrk too). Connections/s =
               requests/s.

Repetitions alternate which server goes first; the report gives the medians and the ratios
aem / nginx (CPU per request: lower is better). The helpers (Server, pinning, /proc CPU, wrk's
output) are http_vs_nginx.py's and load_bench.py's.

usage: scripts/https_vs_nginx.py [--aem-server PATH] [--nginx PATH] [--wrk PATH] [--connections N]
                                 [--duration S] [--repeat N] [--aem-style S] [--quick]
Exit status: 0 when every run succeeded, 1 when one failed, 2 when a tool or binary is missing,
77 when this machine has fewer than two usable cores.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from http_vs_nginx import EXIT_SKIP, NGINX_CONF, PATH, fail_setup, find_tool, parse_wrk, run_load  # noqa: E402
from load_bench import CLIENT_CORE, SERVER_CORE, BenchError, Server  # noqa: E402

BODY = "Hello, World!\\n"
CIPHER = "TLS_AES_256_GCM_SHA384"

# NGINX_CONF with TLS on the listener: the plain configuration's `listen` line gains "ssl", and
# the certificate, protocol and cipher settings join the server block.
TLS_SERVER = """\
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.3;
        ssl_prefer_server_ciphers on;
        ssl_conf_command Ciphersuites {cipher};
        ssl_session_tickets {tickets};
        ssl_session_cache {cache};
"""


def nginx_argv(nginx, prefix, cert, key, tickets):
    def make(port):
        conf = NGINX_CONF.format(prefix=prefix, port=port, path=PATH, content_type="text/plain", body=BODY)
        conf = conf.replace(f"listen 127.0.0.1:{port} backlog=4096;",
                            f"listen 127.0.0.1:{port} ssl backlog=4096;\n" +
                            TLS_SERVER.format(cert=cert, key=key, cipher=CIPHER, tickets="on" if tickets else "off",
                                              cache="shared:SSL:1m" if tickets else "off"))
        with open(os.path.join(prefix, "nginx.conf"), "w") as f:
            f.write(conf)
        return [nginx, "-p", prefix, "-e", os.path.join(prefix, "error.log"), "-c", os.path.join(prefix, "nginx.conf")]
    return make


def make_certificate(prefix):
    cert, key = os.path.join(prefix, "cert.pem"), os.path.join(prefix, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    return cert, key


def run_wrk(wrk, server, args, new_connections):
    cmd = ["taskset", "-c", str(CLIENT_CORE), wrk, "-t1", f"-c{args.connections}", f"-d{args.duration}s",
           "--latency", f"https://127.0.0.1:{server.port}{PATH}"]
    if new_connections:
        cmd[5:5] = ["-H", "Connection: close"]
    return run_load("wrk", cmd, server, args, parse_wrk)


def median(runs, key):
    values = [run[key] for run in runs if key in run]
    return statistics.median(values) if values else float("nan")


def compare(args, wrk, nginx, test):
    new_connections = test == "new"
    results = {"aem": [], "nginx": []}
    failures = []
    with tempfile.TemporaryDirectory(prefix="https_vs_nginx_") as prefix:
        cert, key = make_certificate(prefix)
        aem_argv = [args.aem_server, "--cores", "1", "--tls-cert", cert, "--tls-key", key]
        aem_argv += ["--style", args.aem_style] if args.aem_style else []
        for repetition in range(1, args.repeat + 1):
            for name in (("aem", "nginx") if repetition % 2 else ("nginx", "aem")):
                print(f"[{test} {repetition}/{args.repeat}] {name} ...", file=sys.stderr, flush=True)
                make = ((lambda port: aem_argv[:1] + ["--port", str(port)] + aem_argv[1:]) if name == "aem"
                        else nginx_argv(nginx, prefix, cert, key, tickets=not new_connections))
                try:
                    with Server(name, None, [], make_argv=make) as server:
                        result = run_wrk(wrk, server, args, new_connections)
                except BenchError as error:
                    print(f"  FAILED: {error}", file=sys.stderr)
                    failures.append(name)
                    continue
                results[name].append(result)
                print(f"      {result['requests_per_s']:,.0f} req/s, {result.get('cpu_us_per_req', 0):.1f} us CPU/req, "
                      f"errors {result['errors']}", file=sys.stderr, flush=True)
    what = "keep-alive GET /hello" if not new_connections else "a new TLS connection per request (no resumption)"
    print(f"\nHTTPS, {what}: wrk -t1 -c{args.connections}, {args.duration} s x {args.repeat}, medians")
    print(f"| server | {'req/s' if not new_connections else 'connections/s'} | server CPU us/request | server CPU |")
    print("|---|---|---|---|")
    for name in ("nginx", "aem"):
        print(f"| {name} | {median(results[name], 'requests_per_s'):,.0f} | {median(results[name], 'cpu_us_per_req'):.1f} "
              f"| {median(results[name], 'server_cpu'):.0%} |")
    rate = median(results["aem"], "requests_per_s") / median(results["nginx"], "requests_per_s")
    cpu = median(results["aem"], "cpu_us_per_req") / median(results["nginx"], "cpu_us_per_req")
    print(f"aem / nginx: rate {rate:.2f}x, CPU per request {cpu:.2f}x")
    return 1 if failures else 0


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--aem-server", default="build/release/examples/aem_http_server")
    parser.add_argument("--nginx")
    parser.add_argument("--wrk")
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--aem-style", choices=["capsule", "registration"])
    parser.add_argument("--tests", default="keep-alive,new", help="comma-separated: keep-alive, new")
    parser.add_argument("--quick", action="store_true", help="2 s, one repetition (a check, not a measurement)")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.repeat = 2, 1
    return args


def main():
    args = parse_args()
    if not {SERVER_CORE, CLIENT_CORE} <= os.sched_getaffinity(0):
        print(f"https_vs_nginx: needs cores {SERVER_CORE} and {CLIENT_CORE}: skipped", file=sys.stderr)
        return EXIT_SKIP
    wrk = find_tool(args.wrk, "wrk", "wrk")
    nginx = find_tool(args.nginx, "nginx", "nginx-light")
    find_tool(None, "openssl", "openssl")
    if not os.access(args.aem_server, os.X_OK):
        fail_setup(f"no aem HTTP server at {args.aem_server}: build it or pass --aem-server PATH")
    status = 0
    for test in args.tests.split(","):
        status = max(status, compare(args, wrk, nginx, test))
    return status


if __name__ == "__main__":
    sys.exit(main())
