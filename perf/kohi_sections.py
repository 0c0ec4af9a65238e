#!/usr/bin/env python3
"""perf/kohi_sections.py INDEX.shk: the public-expense sections of a main index file
(FORMAT.md: payers 7, certificates 8, certificate strings 9, certificate persons 10) and their
bytes per certificate, as one JSON line."""
import json
import struct
import sys

KINDS = {7: "payers", 8: "certificates", 9: "certificate_strings", 10: "certificate_persons"}


def main(path):
    with open(path, "rb") as f:
        header = f.read(128)
        if header[:8] != b"SHIKAKU\x1a":
            sys.exit(f"{path}: not a shikaku index")
        (version,) = struct.unpack_from("<I", header, 8)
        (count,) = struct.unpack_from("<I", header, 88)
        (payers,) = struct.unpack_from("<I", header, 92)
        (table,) = struct.unpack_from("<Q", header, 96)
        (certificates,) = struct.unpack_from("<Q", header, 112)
        (file_bytes,) = struct.unpack_from("<Q", header, 16)
        f.seek(table)
        raw = f.read(32 * count)
    sections = {}
    for i in range(count):
        kind, _, _offset, length, _ = struct.unpack_from("<IIQQQ", raw, 32 * i)
        if kind in KINDS:
            sections[KINDS[kind] + "_bytes"] = length
    total = sum(sections.values())
    print(json.dumps({
        "format_version": version,
        "main_file_bytes": file_bytes,
        "payers": payers,
        "certificates": certificates,
        **sections,
        "kohi_bytes": total,
        "kohi_bytes_per_certificate": round(total / certificates, 1) if certificates else None,
    }))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
