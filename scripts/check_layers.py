#!/usr/bin/env python3
"""check_layers.py — the library's include arrows point only downward.

usage: scripts/check_layers.py [SOURCE_DIR]     check the tree (exit 1 on a broken arrow)
       scripts/check_layers.py --self-test      show that a broken arrow is caught

Every file under include/, base/, alloc/, io/ and runtime/ belongs to the layer of its folder (the
longest folder prefix in LAYERS). A quoted include ("runtime/sched/core.hpp") names a file by its
path from the source root, an angle include of <aem/...> is the public layer. Each broken rule is
printed as `file:line includes X (layer A may not include layer B)`.
"""
import re
import sys
from pathlib import Path

# layer -> the layers its files may include (its own always). Top of the stack first.
LAYERS = {
    "runtime":         {"runtime/diag", "runtime/tls", "runtime/upgrade", "runtime/metrics", "runtime/net", "runtime/sync", "runtime/fdio", "runtime/offload",
                        "runtime/events", "runtime/sched", "runtime/fiber", "io", "alloc", "base", "include"},
    "runtime/tls":     {"runtime/net", "runtime/fdio", "runtime/offload", "runtime/sched", "runtime/fiber", "io", "alloc",
                        "base", "include"},
    "runtime/upgrade": {"runtime/net", "runtime/fdio", "runtime/offload", "runtime/sched", "runtime/fiber", "io",
                        "alloc", "base", "include"},
    # The stall watchdog and the capsule dump read the cores' and capsules' internals.
    "runtime/diag":    {"runtime/sched", "runtime/fiber", "alloc", "base", "include"},
    "runtime/metrics": {"runtime/offload", "runtime/events", "runtime/sched", "runtime/fiber", "io", "alloc",
                        "base", "include"},
    "runtime/net":     {"runtime/fdio", "runtime/offload", "runtime/sched", "runtime/fiber", "io", "alloc", "base", "include"},
    "runtime/sync":    {"runtime/sched", "runtime/fiber", "alloc", "base", "include"},
    "runtime/fdio":    {"runtime/offload", "runtime/sched", "runtime/fiber", "io", "alloc", "base", "include"},
    "runtime/offload": {"runtime/sched", "runtime/fiber", "io", "alloc", "base", "include"},
    "runtime/events":  {"runtime/sched", "runtime/fiber", "io", "alloc", "base", "include"},
    "runtime/sched":   {"runtime/fiber", "io", "alloc", "base", "include"},
    "runtime/fiber":   {"base", "include"},
    "io":              {"io/uring", "io/epoll", "alloc", "base", "include"},  # the backend factory picks one
    "io/uring":        {"io", "alloc", "base", "include"},
    "io/epoll":        {"io", "alloc", "base", "include"},
    "alloc":           {"base", "include"},
    "base":            {"include"},  # the log route and the trace probes, under every layer
    "include":         set(),
}
# Only these layers may include a system header; each such header is named once here.
EXCLUSIVE_HEADERS = {
    "liburing.h": {"io/uring"},
    "sys/sdt.h": {"base"},  # probes are placed through base/probes.hpp's AEM_PROBE_* macros
}
# Exactly one file of the library may include Boost.Context (and owns the sanitizer fiber hooks).
BOOST_CONTEXT_OWNER = "runtime/fiber/context.cpp"
LIBRARY_DIRS = ("include", "base", "alloc", "io", "runtime")
INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')


def layer_of(path):
    """The layer of a file or include path (relative, '/'-separated), or None outside the library."""
    if path.startswith("include/") or path.startswith("aem/"):
        return "include"
    best = None
    for layer in LAYERS:
        if layer != "include" and (path == layer or path.startswith(layer + "/")):
            if best is None or len(layer) > len(best):
                best = layer
    return best


def check(files):
    """files: {relative path: text}. Returns the list of broken-arrow messages."""
    problems = []
    boost_users = []
    for path, text in sorted(files.items()):
        own = layer_of(path)
        if own is None:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            m = INCLUDE.match(line)
            if not m:
                continue
            kind, target = m.groups()
            where = f"{path}:{number} includes {target}"
            if kind == "<" and target.startswith("boost/context/"):
                boost_users.append(where)
            if kind == "<":
                if target.startswith("aem/"):
                    target_layer = "include"
                else:
                    for header, allowed in EXCLUSIVE_HEADERS.items():
                        if target == header and own not in allowed:
                            problems.append(f"{where} (only {', '.join(sorted(allowed))} may include <{header}>)")
                    continue
            else:
                target_layer = layer_of(target)
                if target_layer is None:
                    problems.append(f"{where} (layer {own} may not include a file outside the library)")
                    continue
            if target_layer != own and target_layer not in LAYERS[own]:
                problems.append(f"{where} (layer {own} may not include layer {target_layer})")
    owners = [u for u in boost_users if not u.startswith(BOOST_CONTEXT_OWNER + ":")]
    for user in owners:
        problems.append(f"{user} (only {BOOST_CONTEXT_OWNER} may include Boost.Context)")
    if not any(u.startswith(BOOST_CONTEXT_OWNER + ":") for u in boost_users) and files.get(BOOST_CONTEXT_OWNER) is not None:
        problems.append(f"{BOOST_CONTEXT_OWNER}:1 does not include Boost.Context (it is the one file that should)")
    return problems


def read_tree(root):
    files = {}
    for top in LIBRARY_DIRS:
        for f in (root / top).rglob("*"):
            if f.suffix in (".hpp", ".cpp", ".h", ".cc") and f.is_file():
                files[f.relative_to(root).as_posix()] = f.read_text(errors="replace")
    return files


def self_test():
    """A tree with one upward arrow of each kind must report each, and a clean tree nothing."""
    clean = {
        "runtime/sched/core.hpp": '#include "runtime/fiber/context.hpp"\n#include <aem/config.hpp>\n',
        "runtime/events/event_table.hpp": '#include "runtime/sched/core.hpp"\n',
        "io/uring/uring_backend.hpp": '#include "io/backend.hpp"\n#include <liburing.h>\n',
        "runtime/fiber/context.cpp": '#include <boost/context/detail/fcontext.hpp>\n',
        "include/aem/runtime.hpp": '#include <aem/config.hpp>\n',
    }
    assert check(clean) == [], check(clean)
    broken = dict(clean)
    broken["runtime/sched/core.hpp"] += '#include "runtime/events/event_table.hpp"\n'
    broken["io/buffer_ring.hpp"] = '#include <liburing.h>\n'
    broken["alloc/region.cpp"] = '#include "runtime/sched/core.hpp"\n'
    broken["include/aem/event.hpp"] = '#include "runtime/events/event_table.hpp"\n'
    broken["runtime/sync/mutex.cpp"] = '#include <boost/context/fiber.hpp>\n'
    got = check(broken)
    expected = [
        "alloc/region.cpp:1 includes runtime/sched/core.hpp (layer alloc may not include layer runtime/sched)",
        "include/aem/event.hpp:1 includes runtime/events/event_table.hpp (layer include may not include layer runtime/events)",
        "io/buffer_ring.hpp:1 includes liburing.h (only io/uring may include <liburing.h>)",
        "runtime/sched/core.hpp:3 includes runtime/events/event_table.hpp (layer runtime/sched may not include layer runtime/events)",
        "runtime/sync/mutex.cpp:1 includes boost/context/fiber.hpp (only runtime/fiber/context.cpp may include Boost.Context)",
    ]
    if sorted(got) != sorted(expected):
        print("self-test: expected\n  " + "\n  ".join(expected) + "\ngot\n  " + "\n  ".join(got))
        return 1
    print(f"self-test: {len(expected)} broken arrows caught, the clean tree passes")
    return 0


def main(argv):
    if argv[1:] == ["--self-test"]:
        return self_test()
    root = Path(argv[1] if len(argv) > 1 else Path(__file__).resolve().parent.parent)
    files = read_tree(root)
    problems = check(files)
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} include(s) break the layering (the rules: scripts/check_layers.py LAYERS)")
        return 1
    print(f"layers: {len(files)} files, every include points downward")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
