"""fvt_plots.py — renders scripts/fiber_vs_thread.py's results as PNGs with gnuplot (no Python
plotting library needed): throughput, p50/p99/p999 latency and server memory, each against the
number of concurrent connections on a log axis, one line per server."""
import os
import subprocess

PLOT_TIMEOUT_S = 60
# Columns of each server's inline data block, in this order.
COLUMNS = ("connections", "requests_per_s", "p50_ms", "p99_ms", "p999_ms", "rss_mib", "hwm_mib")


def data_blocks(rows):
    """Gnuplot datablocks, one per server with results: ($name, gnuplot text)."""
    servers = []
    for row in rows:
        if row["status"] == "ok" and row["server"] not in servers:
            servers.append(row["server"])
    blocks = []
    for i, server in enumerate(servers):
        lines = [f"$d{i} << EOD"]
        for r in sorted((r for r in rows if r["server"] == server and r["status"] == "ok"),
                        key=lambda r: r["connections"]):
            lines.append(f"{r['connections']} {r['requests_per_s']:.1f} {r['p50_us'] / 1e3:.4f} "
                         f"{r['p99_us'] / 1e3:.4f} {r['p999_us'] / 1e3:.4f} {r['rss_kib'] / 1024:.2f} "
                         f"{r['hwm_kib'] / 1024:.2f}")
        lines.append("EOD")
        blocks.append((server, f"$d{i}", "\n".join(lines)))
    return blocks


def plot_command(blocks, column, suffix="", dash=None):
    """A `plot` list of one column of every block, each server in its own colour."""
    index = COLUMNS.index(column) + 1
    parts = []
    for i, (server, name, _) in enumerate(blocks):
        style = f" dt {dash}" if dash else ""
        parts.append(f"{name} using 1:{index} with linespoints lc {i + 1} lw 2 pt {i + 4}{style} "
                     f"title '{server}{suffix}'")
    return ", ".join(parts)


def render_plots(out_dir, rows, subtitle):
    """Writes throughput.png, latency.png and memory.png into out_dir; returns their paths.
    Raises RuntimeError when gnuplot fails."""
    blocks = data_blocks(rows)
    if not blocks:
        return []
    paths = {name: os.path.join(out_dir, f"{name}.png") for name in ("throughput", "latency", "memory")}
    script = [block for _, _, block in blocks]
    script += [
        "set datafile separator whitespace",
        "set logscale x",
        "set grid",
        "set key top left noenhanced",
        "set xlabel 'concurrent connections (closed loop)'",
        "set terminal pngcairo size 1000,650 noenhanced",
        f"set output '{paths['throughput']}'",
        f"set title 'Throughput — {subtitle}'",
        "set ylabel 'requests/s'",
        "set yrange [0:*]",
        "plot " + plot_command(blocks, "requests_per_s"),
        "set terminal pngcairo size 1800,600 noenhanced",
        f"set output '{paths['latency']}'",
        "set logscale y",
        "set yrange [*:*]",
        "set ylabel 'latency, ms (log)'",
        f"set multiplot layout 1,3 title 'Request latency — {subtitle}'",
    ]
    for column, label in (("p50_ms", "p50"), ("p99_ms", "p99"), ("p999_ms", "p99.9")):
        script += [f"set title '{label}'", "plot " + plot_command(blocks, column)]
    script += [
        "unset multiplot",
        "set terminal pngcairo size 1000,650 noenhanced",
        f"set output '{paths['memory']}'",
        "set title 'Server memory — solid: peak RSS (VmHWM), dashed: largest RSS sample while the client ran'",
        "set ylabel 'MiB (log)'",
        "plot " + plot_command(blocks, "hwm_mib") + ", " + plot_command(blocks, "rss_mib", " (RSS)", dash=2),
        "unset output",
    ]
    done = subprocess.run(["gnuplot"], input="\n".join(script) + "\n", capture_output=True, text=True,
                          timeout=PLOT_TIMEOUT_S)
    if done.returncode != 0:
        raise RuntimeError(f"gnuplot failed ({done.returncode}): {done.stderr.strip()}")
    return list(paths.values())
