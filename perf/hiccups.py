#!/usr/bin/env python3
"""perf/hiccups.py: how long this machine stops running a busy thread, per core.

One process per core spins reading the monotonic clock for the given seconds and records
every gap between two reads longer than 20 µs: time the thread did not run (the hypervisor
ran something else, "steal", or the kernel did). Nothing else should run on those cores.

A request that arrives at a random moment and needs a core waits out the rest of any gap it
lands in, so the share of time in gaps bounds latency from below whatever the server does:

    P(wait > x) = sum over gaps g of max(0, g - x) / run time

The "floor" quantiles below solve P(wait > x) = 1 - q. A request that needs two cores (the
client's and the server's) meets both cores' gaps, so its floor is higher still.

    perf/hiccups.py [SECONDS=10] [CPU ...=every core]

Prints one line per core; with --json, one JSON object per core.
"""

import json
import multiprocessing
import os
import sys
import time

GAP_NS = 20_000  # reads closer than this are the loop running


def spin(cpu, seconds, out):
    os.sched_setaffinity(0, {cpu})
    clock = time.perf_counter_ns
    end = clock() + int(seconds * 1e9)
    gaps = []
    last = clock()
    while last < end:
        now = clock()
        if now - last > GAP_NS:
            gaps.append(now - last)
        last = now
    out.put((cpu, gaps))


def floor_us(gaps, total_ns, q):
    """The x (µs) at which a random moment waits longer than x with probability 1 - q."""
    target = (1 - q) * total_ns
    lo, hi = 0, max(gaps, default=0)
    if sum(gaps) <= target:
        return 0.0
    for _ in range(60):  # bisection on x: the tail sum falls as x grows
        mid = (lo + hi) / 2
        if sum(g - mid for g in gaps if g > mid) > target:
            lo = mid
        else:
            hi = mid
    return hi / 1000


def report(cpu, gaps, seconds):
    total = seconds * 1e9
    over = lambda x: sum(1 for g in gaps if g > x)
    share = lambda x: 100 * sum(g for g in gaps if g > x) / total
    return {
        "cpu": cpu,
        "seconds": seconds,
        "gaps_over_100us": over(100_000),
        "gaps_over_500us": over(500_000),
        "gaps_over_2ms": over(2_000_000),
        "max_gap_us": round(max(gaps, default=0) / 1000),
        "time_in_gaps_over_100us_pct": round(share(100_000), 2),
        "floor_p99_us": round(floor_us(gaps, total, 0.99)),
        "floor_p999_us": round(floor_us(gaps, total, 0.999)),
        "floor_p9999_us": round(floor_us(gaps, total, 0.9999)),
    }


def main():
    args = [a for a in sys.argv[1:] if a != "--json"]
    as_json = "--json" in sys.argv[1:]
    try:
        seconds = float(args[0]) if args else 10.0
        cpus = [int(a) for a in args[1:]] or sorted(os.sched_getaffinity(0))
    except ValueError:
        sys.exit(f"usage: {sys.argv[0]} [SECONDS] [CPU ...] [--json]")
    if not 0 < seconds <= 3600:
        sys.exit("SECONDS must be in (0, 3600]")
    out = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=spin, args=(c, seconds, out)) for c in cpus]
    for p in procs:
        p.start()
    results = sorted(out.get() for _ in procs)
    for p in procs:
        p.join()
    for cpu, gaps in results:
        r = report(cpu, gaps, seconds)
        if as_json:
            print(json.dumps(r))
        else:
            print(
                f"core {cpu}: {seconds:g} s, gaps > 100 µs: {r['gaps_over_100us']}, "
                f"> 500 µs: {r['gaps_over_500us']}, > 2 ms: {r['gaps_over_2ms']}, "
                f"longest {r['max_gap_us']} µs; {r['time_in_gaps_over_100us_pct']}% of the time "
                f"in gaps > 100 µs; floor for a request at a random moment: "
                f"p99 {r['floor_p99_us']} µs, p99.9 {r['floor_p999_us']} µs, "
                f"p99.99 {r['floor_p9999_us']} µs"
            )


if __name__ == "__main__":
    main()
