#!/usr/bin/env python3
"""seeds.py — writes the hand-made seed inputs of the fuzz targets into a directory.

    tests/fuzz/seeds.py arena OUT_DIR
    tests/fuzz/seeds.py http_parser OUT_DIR

The committed corpora (tests/fuzz/corpus/<target>/) were grown from these seeds by fuzzing and
minimized with libFuzzer's -merge=1; see tests/fuzz/README.md. Each seed is named after what
it exercises; the merge keeps only those that add coverage, under libFuzzer's sha1 names.
"""
import os
import struct
import sys


# --- arena_fuzz.cpp ------------------------------------------------------------------------
# Input: capacity shift (4 KiB << b % 7), min_block shift (16 << b % 4), hot-cache depth index
# ({0, 1, 2, 8}[b % 4]), flags (1 virtual zone, 2 fail policy, 4 debug, bits 3-4 release
# threshold 8 KiB << n); then operations: opcode % 9 and its arguments.
ALLOC, ALLOC_DATA, FREE, REWRITE, TRIM, REMOTE_FREE, DOUBLE_FREE, INTERIOR, STATS = range(9)
VIRTUAL, FAIL, DEBUG = 1, 2, 4


def cfg(cap_shift, min_shift, depth_index, flags=0, release=0):
    return bytes([cap_shift, min_shift, depth_index, flags | (release << 3)])


def alloc(v, shift=4, data=False):
    """Requests (v << shift) >> 4 bytes: shift 4 asks for v bytes."""
    return bytes([ALLOC_DATA if data else ALLOC]) + struct.pack("<H", v) + bytes([shift])


def free(i):
    return bytes([FREE, i])


def rewrite(i):
    return bytes([REWRITE, i])


def remote_free(indices, drain=True):
    return bytes([REMOTE_FREE, len(indices)] + list(indices) + [0 if drain else 1])


def double_free(i):
    return bytes([DOUBLE_FREE, i])


def interior(i, off):
    return bytes([INTERIOR, i, off])


TRIM_OP = bytes([TRIM])
STATS_OP = bytes([STATS])


def arena_seeds():
    s = {}
    # Every operation once, on a 64 KiB heap arena with 64-byte blocks and a hot cache of 2.
    s["every_op"] = (cfg(4, 2, 2) + alloc(100) + alloc(3000, data=True) + alloc(17) + rewrite(1) +
                     interior(1, 3) + free(0) + double_free(0) + STATS_OP + remote_free([0, 0]) +
                     TRIM_OP + STATS_OP)
    # Same-size churn through the hot cache (depth 8), then trim coalesces the cached blocks.
    churn = b"".join(alloc(64) for _ in range(12)) + b"".join(free(0) for _ in range(12))
    s["hot_cache_churn"] = cfg(2, 0, 3) + churn + churn + STATS_OP + TRIM_OP + STATS_OP
    # No hot cache: every free coalesces at once; splits down to 16 B and merges back.
    s["no_cache_split_merge"] = (cfg(0, 0, 0) + alloc(16) + alloc(16) + alloc(32) + alloc(2048) + free(1) +
                                 free(0) + STATS_OP + free(1) + free(0) + STATS_OP)
    # Fail policy: a 4 KiB arena runs out (out_of_memory), then an oversize request
    # (invalid_argument), then everything is given back.
    s["fail_exhaustion"] = (cfg(0, 1, 1, FAIL) + alloc(2048) + alloc(1024) + alloc(1024) + alloc(32) +
                            alloc(0xffff, shift=8) + free(0) + alloc(1024, data=True) + STATS_OP)
    # Fallback policy: exhaustion and oversize requests go to the fallback heap.
    s["fallback_heap"] = (cfg(0, 2, 2) + alloc(4096) + alloc(512) + alloc(0xffff, shift=6) +
                          alloc(3000, data=True) + rewrite(2) + free(1) + remote_free([0, 1]) + STATS_OP +
                          TRIM_OP)
    # Virtual zone with the smallest release threshold: coalesced 8 KiB+ blocks are released.
    s["virtual_release"] = (cfg(6, 3, 1, VIRTUAL, 0) + alloc(0x8000, shift=5) + alloc(8192) + alloc(20000) +
                            free(0) + free(0) + TRIM_OP + STATS_OP + alloc(0xffff) + free(0) + free(0) + STATS_OP)
    # Virtual zone, debug, fail policy, largest release threshold.
    s["virtual_debug_fail"] = (cfg(5, 1, 3, VIRTUAL | DEBUG | FAIL, 3) + alloc(40000) + alloc(40000, data=True) +
                               alloc(40000) + alloc(4000) + interior(0, 200) + double_free(0) + free(2) +
                               double_free(0) + STATS_OP + remote_free([0, 0, 0]))
    # EventData blocks freed by another thread, with and without an explicit drain.
    s["remote_event_data"] = (cfg(3, 1, 2, DEBUG) + alloc(100, data=True) + alloc(200, data=True) +
                              alloc(300, data=True) + alloc(400) + remote_free([1, 0], drain=False) +
                              alloc(100) + remote_free([0, 0, 0], drain=True) + STATS_OP)
    # Zero-byte requests and the interior probe of a 128-byte-min-block arena.
    s["zero_and_interior"] = (cfg(1, 3, 0) + alloc(0) + alloc(0, data=True) + alloc(1000) + interior(2, 5) +
                              interior(2, 1) + free(2) + double_free(0) + STATS_OP)
    # Request sizes at every shift.
    s["every_shift"] = cfg(6, 0, 2) + b"".join(alloc(0x1234, shift=k) for k in range(12)) + STATS_OP + TRIM_OP
    # Configuration bytes only, then a truncated operation.
    s["config_only"] = cfg(6, 3, 3, VIRTUAL | FAIL | DEBUG, 2)
    s["truncated_op"] = cfg(2, 1, 1) + bytes([ALLOC, 0x40])
    return s


# --- http_parser_fuzz.cpp --------------------------------------------------------------------
# Input: max_head_bytes (64 + b % 64 * 16), max_headers (b % 16), max_body_bytes (b % 32 * 37),
# two bytes seeding how the stream is split, then the stream of one connection.
def limits(head=63, headers=15, body=31, split=0x2a17):
    return bytes([head, headers, body, split & 0xff, split >> 8])


ROOMY = limits()


def http_seeds():
    s = {}
    crlf = "\r\n"

    def req(lines, body=""):
        return (crlf.join(lines) + crlf + crlf + body).encode()

    get = req(["GET /index.html HTTP/1.1", "Host: example.com", "Connection: keep-alive"])
    s["keep_alive"] = ROOMY + get + get
    s["pipelined"] = ROOMY + get + req(["HEAD /a/b/c.txt?x=1 HTTP/1.1", "Host: h"]) + req(
        ["POST /up HTTP/1.1", "Host: h", "Content-Length: 5"], "hello") + req(
        ["GET / HTTP/1.1", "Host: h", "Connection: close"])
    s["pipelined_bytewise"] = limits(split=0) + get + get
    s["http10_keep_alive"] = ROOMY + req(["GET / HTTP/1.0", "Connection: Keep-Alive"]) + req(["GET /x HTTP/1.0"])
    s["content_length"] = ROOMY + req(["PUT /file HTTP/1.1", "Host: h", "Content-Length: 11",
                                       "Expect: 100-continue"], "hello world")
    s["content_length_zero"] = ROOMY + req(["POST / HTTP/1.1", "Host: h", "Content-Length: 0"]) + get
    s["chunked"] = ROOMY + req(["POST /c HTTP/1.1", "Host: h", "Transfer-Encoding: chunked"],
                               "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n") + get
    s["unsupported_coding"] = ROOMY + req(["POST /c HTTP/1.1", "Host: h", "Transfer-Encoding: gzip, chunked"])
    s["chunked_extensions"] = ROOMY + req(["POST /c HTTP/1.1", "Host: h", "Transfer-Encoding: chunked"],
            "A;name=value;flag\r\n0123456789\r\n1 ;x=\"q\"\r\n!\r\n0;last\r\n\r\n")
    s["chunked_trailers"] = ROOMY + req(["POST /t HTTP/1.1", "Host: h", "Transfer-Encoding: chunked"],
                                        "3\r\nabc\r\n0\r\nX-Checksum: 1234\r\nX-Other: v\r\n\r\n") + get
    s["chunked_hex_case"] = ROOMY + req(["POST / HTTP/1.1", "Host: h", "Transfer-Encoding: CHUNKED"],
                                        "a\r\n0123456789\r\nB\r\n0123456789a\r\n00\r\n\r\n")
    s["chunked_too_large"] = limits(body=1) + req(["POST / HTTP/1.1", "Host: h", "Transfer-Encoding: chunked"],
                                                  "fffffffffffffffffff\r\n")
    s["absolute_form"] = ROOMY + req(["GET http://h/x?q HTTP/1.1", "Host: other"]) + req(
        ["GET HTTPS://example.com:8443 HTTP/1.1", "Host: example.com"]) + req(
        ["GET http://[::1]:80/a/../b?z HTTP/1.1", "Host: x"]) + req(["GET http://h?only=query HTTP/1.1", "Host: h"])
    s["absolute_form_bad"] = ROOMY + req(["GET ftp://h/x HTTP/1.1", "Host: h"])
    s["absolute_form_userinfo"] = ROOMY + req(["GET http://user@h/x HTTP/1.1", "Host: h"])
    s["options_star_connect"] = ROOMY + req(["OPTIONS * HTTP/1.1", "Host: h"]) + req(
        ["CONNECT h:443 HTTP/1.1", "Host: h:443"])
    s["header_continuation"] = ROOMY + req(["GET / HTTP/1.1", "Host: h", "X-Folded: a", " b"])
    s["header_continuation_tab"] = ROOMY + req(["GET / HTTP/1.1", "X-Folded: a", "\tb", "Host: h"])
    s["space_before_colon"] = ROOMY + req(["GET / HTTP/1.1", "Host : h"])
    s["oversized_header"] = limits(head=0) + req(["GET / HTTP/1.1", "Host: h", "X-Big: " + "a" * 200])
    s["too_many_headers"] = limits(headers=3) + req(["GET / HTTP/1.1", "Host: h", "A: 1", "B: 2", "C: 3"])
    s["body_too_large"] = limits(body=1) + req(["POST / HTTP/1.1", "Host: h", "Content-Length: 100000"])
    s["length_and_chunked"] = ROOMY + req(["POST / HTTP/1.1", "Host: h", "Content-Length: 3",
                                           "Transfer-Encoding: chunked"], "abc")
    s["length_conflict"] = ROOMY + req(["POST / HTTP/1.1", "Host: h", "Content-Length: 3", "content-length: 4"], "abcd")
    s["length_repeated"] = ROOMY + req(["POST / HTTP/1.1", "Host: h", "Content-Length: 3", "Content-Length: 3"], "abc")
    s["chunked_not_last"] = ROOMY + req(["POST / HTTP/1.1", "Host: h", "Transfer-Encoding: chunked, gzip"])
    s["version_505"] = ROOMY + req(["GET / HTTP/2.0", "Host: h"])
    s["missing_host"] = ROOMY + req(["GET / HTTP/1.1"])
    s["leading_empty_lines"] = ROOMY + b"\r\n\r\n" + get
    s["bare_lf"] = ROOMY + b"GET / HTTP/1.1\nHost: h\n\n"
    s["path_traversal"] = ROOMY + req(["GET /a/%2e%2e/%2E%2E/etc/passwd HTTP/1.1", "Host: h"]) + req(
        ["GET /./b//c/../d%2fe%00 HTTP/1.1", "Host: h"]) + req(["GET /" + "x" * 600 + " HTTP/1.1", "Host: h"])
    s["incomplete_head"] = ROOMY + b"GET /slow HTTP/1.1\r\nHost: h\r\nX-Partial: abc"
    return s


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("arena", "http_parser"):
        sys.exit(__doc__)
    seeds = arena_seeds() if sys.argv[1] == "arena" else http_seeds()
    os.makedirs(sys.argv[2], exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(sys.argv[2], name), "wb") as f:
            f.write(data)
    print(f"{len(seeds)} seeds in {sys.argv[2]}")


if __name__ == "__main__":
    main()
