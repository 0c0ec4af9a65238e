#!/usr/bin/env python3
"""Bytes a generation wrote: the sizes of its files (each inode once) that its parent (the
`parent` its report.json names) does not share by hard link. A change generation's report.json
is also its reports/layer-NNNN.json: counted once. Counting files with one link would miss it.
    perf/written_bytes.py DATA [GENERATION]     (default: the one CURRENT names)
"""
import json, os, sys

data = sys.argv[1]
gen = sys.argv[2] if len(sys.argv) > 2 else open(os.path.join(data, "CURRENT")).read().strip()
gdir = os.path.join(data, "generations", gen)


def files(d):
    for root, _, names in os.walk(d):
        for n in names:
            st = os.stat(os.path.join(root, n))
            yield st.st_ino, st.st_size


parent = json.load(open(os.path.join(gdir, "report.json"))).get("parent")
pdir = os.path.join(data, "generations", parent) if parent else None
shared = {ino for ino, _ in files(pdir)} if pdir and os.path.isdir(pdir) else set()
print(sum(size for ino, size in dict(files(gdir)).items() if ino not in shared))
