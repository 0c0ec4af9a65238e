#!/usr/bin/env python3
"""perf/phases.py REPORT_JSON [BUILD_TIME]: a build's phase table from its report.json
(wall and CPU seconds per phase, CPU seconds per read_encode stage), with the peak RSS and
CPU of the whole process from `/usr/bin/time -v` output when given."""
import json
import re
import sys

r = json.load(open(sys.argv[1]))
wall, cpu = r.get("phases_ms", {}), r.get("phases_cpu_ms", {})
order = ["read_encode", "kohi", "link", "write", "verify", "publish"]
phases = [p for p in order if p in wall] + [p for p in wall if p not in order]
print(f"{'phase':<16}{'wall s':>9}{'CPU s':>9}")
for p in phases:
    c = f"{cpu[p] / 1000:9.1f}" if p in cpu else f"{'-':>9}"
    print(f"{p:<16}{wall[p] / 1000:9.1f}{c}")
print(f"{'total':<16}{sum(wall.values()) / 1000:9.1f}{sum(cpu.values()) / 1000:9.1f}")
stages = r.get("stages_cpu_ms", {})
if stages:
    print("read_encode stages, CPU s summed over threads:")
    for s in ["read_file", "decode", "parse_rows", "encode", "write_segment"]:
        if s in stages:
            print(f"  {s:<14}{stages[s] / 1000:9.1f}")
if len(sys.argv) > 2:
    t = open(sys.argv[2]).read()
    def field(name):
        m = re.search(re.escape(name) + r".*\s(\S+)$", t, re.M)
        return m.group(1) if m else "?"
    rss_gb = int(field("Maximum resident set size")) / 1024 / 1024
    print(f"process: wall {field('Elapsed (wall clock)')}, user {field('User time')} s, "
          f"system {field('System time')} s, peak RSS {rss_gb:.2f} GB")
