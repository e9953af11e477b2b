#!/usr/bin/env python3
"""bench_ratios.py — run aem_bench once and print each benchmark's median against its baseline
from the same run, with the project's target for that ratio.

usage: scripts/bench_ratios.py path/to/aem_bench [--repetitions N] [--filter REGEX] [--json OUT]
Times are medians of N repetitions (wall-clock per iteration). A ratio is benchmark / baseline.
"""
import argparse
import json
import re
import subprocess
import sys

# (benchmark, baseline, target ratio: benchmark/baseline must be <= target)
TARGETS = [
    ("BM_Yield", "BM_RawContextSwitch", 1.3),
    ("BM_SpawnJoin", "BM_BoostPooledFiber", 1.0),
    ("BM_TimerArmCancel", "BM_RawContextSwitch", 4.0),
    ("BM_CrossCorePingPong", "BM_ThreadPingPong", 0.2),
    ("BM_CrossCorePingPongAfterGaps", "BM_ThreadPingPong", 0.2),
    # With Config::idle_spin = 0 every hand-over is a sleep and a wake-up, as with the threads.
    ("BM_CrossCorePingPongNoSpin", "BM_ThreadPingPong", 1.0),
    ("BM_ArenaPair", "BM_MimallocPair", 1.0),
    ("BM_ArenaSameSize", "BM_MimallocSameSize", 1.0),
    ("BM_ArenaScattered", "BM_MimallocScattered", 1.0),
    ("BM_Activation", "BM_Yield", 4.0),
    # Not an issue's target: guards the direct wake of a core waiting for a max_active slot
    # (without it the hand-over waits for the waiting core's 1 ms retry: a ratio near 500).
    ("BM_MaxActiveHandoff", "BM_UnlimitedHandoff", 3.0),
    # Not an issue's target: guards that a loop turn with only idle I/O in flight enters no
    # kernel (with an io_uring_enter per turn, before TASKRUN_FLAG, it measured 3.1-3.3 here).
    ("BM_YieldIdleIo", "BM_Yield", 1.3),
    # aem::blocking's round trip against the usual ways to run a function off the calling thread.
    ("BM_BlockingRoundTrip", "BM_TaskPoolRoundTrip", 1.0),
    ("BM_BlockingRoundTrip", "BM_TaskPoolRoundTripAnyCpu", 1.0),
    ("BM_BlockingRoundTrip", "BM_AsyncRoundTrip", 1.0),
]

# (benchmark, baseline, counter, target): benchmark's counter / baseline's counter <= target
COUNTER_TARGETS = [
    ("BM_DispatchLatencyHighUnderFlood", "BM_DispatchLatencyIdle", "p99_ns", 3.0),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bench")
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--filter", default=".")
    parser.add_argument("--json", help="also write the raw Google Benchmark JSON here")
    args = parser.parse_args()

    cmd = [args.bench, f"--benchmark_filter={args.filter}", f"--benchmark_repetitions={args.repetitions}",
           "--benchmark_report_aggregates_only=true", "--benchmark_format=json"]
    print("running:", " ".join(cmd), file=sys.stderr)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    data = json.loads(out)
    if args.json:
        with open(args.json, "w") as f:
            f.write(out)

    medians, counters = {}, {}
    for b in data["benchmarks"]:
        if b.get("aggregate_name") != "median":
            continue
        name = re.sub(r"(/real_time)?_median$", "", b["name"])
        name = re.sub(r"/real_time$", "", name)
        scale = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}[b.get("time_unit", "ns")]
        medians[name] = b["real_time"] * scale
        counters[name] = {k: v for k, v in b.items() if isinstance(v, (int, float)) and k not in (
            "real_time", "cpu_time", "iterations", "repetitions", "repetition_index", "threads", "family_index",
            "per_family_instance_index")}

    print(f"\n{'benchmark':<34}{'median ns':>12}")
    for name in sorted(medians):
        print(f"{name:<34}{medians[name]:>12.1f}")

    print(f"\n{'ratio':<50}{'measured':>10}{'target':>9}  verdict")
    failed = 0
    for bench, base, target in TARGETS:
        # Parameterised benchmarks (BM_X/64) are paired with the baseline of the same argument.
        for name in sorted(medians):
            if name != bench and not name.startswith(bench + "/"):
                continue
            suffix = name[len(bench):]
            if base + suffix not in medians:
                continue
            ratio = medians[name] / medians[base + suffix]
            ok = ratio <= target
            failed += not ok
            print(f"{name + ' / ' + base + suffix:<50}{ratio:>10.2f}{target:>9.2f}  {'meets' if ok else 'MISSES'}")
    for bench, base, counter, target in COUNTER_TARGETS:
        if counter not in counters.get(bench, {}) or not counters.get(base, {}).get(counter):
            continue
        ratio = counters[bench][counter] / counters[base][counter]
        ok = ratio <= target
        failed += not ok
        label = f"{bench} / {base} {counter}"
        print(f"{label:<50}{ratio:>10.2f}{target:>9.2f}  {'meets' if ok else 'MISSES'}")
    for name, values in sorted(counters.items()):
        if "p999_over_p50" in values:
            v = values["p999_over_p50"]
            if name.startswith("BM_Arena"):  # the target is the arena's; others are for reference
                failed += v > 4.0
                print(f"{name + ' p99.9 / p50':<50}{v:>10.2f}{4.0:>9.2f}  {'meets' if v <= 4.0 else 'MISSES'}")
            else:
                print(f"{name + ' p99.9 / p50':<50}{v:>10.2f}{'':>9}  (reference)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
