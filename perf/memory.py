#!/usr/bin/env python3
"""perf/memory.py: the server's resident memory under the hostile loads of issue 27.

Starts `shikaku serve` on loopback (its own process, so its RSS is its own), runs one load,
samples the server's RSS every 20 ms from /proc, and prints one JSON line per scenario:

- idle:    N keep-alive connections that each read a large batch answer, then sit idle;
- silent:  N clients that post a batch and never read the answer (a 4 KiB receive buffer);
- claims:  N concurrent `POST /v1/claims` of a body of BYTES (one-line receipts, the most
           receipts a body can hold, or receipts of 30 records, as a hospital's).

For each: RSS at rest, peak, at the end of the load, and how long after the clients closed
the RSS came back within 10% of its value at rest; the statuses the clients got; the
budget's refusals. Usage (perf/memory.sh runs them all):

    perf/memory.py --bin target/release/shikaku --data DATA --queries queries.csv \
        --scenario silent --clients 1500 [--budget-bytes N] [--json-batch]
"""

import argparse
import json
import os
import re
import resource
import socket
import subprocess
import threading
import time

SAMPLE_S = 0.02


def rss_bytes(pid, field="VmRSS:"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field}")


def anon_bytes(pid):
    """The anonymous part of the RSS: the server's own memory, not the index's mapped pages."""
    return rss_bytes(pid, "RssAnon:")


def warm_up(addr, body, ctype):
    """One batch answered and read: the index's pages the load touches are then resident, so
    the RSS at rest counts them as the RSS under load does."""
    s = connect(addr)
    s.sendall(request("/v1/batch", body, ctype))
    read_response(s)
    s.close()


class Sampler(threading.Thread):
    """The server's RSS every 20 ms; `peak` since the last `reset`."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop = pid, 0, False

    def run(self):
        while not self.stop:
            self.peak = max(self.peak, rss_bytes(self.pid))
            time.sleep(SAMPLE_S)


def start_server(args):
    cmd = [args.bin, "serve", "--data", args.data, "--resp", "127.0.0.1:0",
           "--http", "127.0.0.1:0", "--threads", str(args.threads)]
    if args.budget_bytes:
        cmd += ["--memory-budget-bytes", str(args.budget_bytes)]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    log = ""
    deadline = time.time() + 120
    while time.time() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        log += line
        m = re.search(r"HTTP on (\S+)", line)
        if m:
            host, port = m.group(1).rsplit(":", 1)
            # Drained on a thread so the server never blocks on a full pipe.
            threading.Thread(target=proc.stderr.read, daemon=True).start()
            return proc, (host, int(port))
    proc.kill()
    raise SystemExit(f"shikaku serve did not start:\n{log}")


def request(path, body, content_type, accept=None):
    head = (f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n")
    if accept:
        head += f"Accept: {accept}\r\n"
    return head.encode() + b"\r\n" + body


def read_response(sock, keep=False):
    """Status and body length of one response (Content-Length framed); with `keep`, its
    body."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            return None, 0
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    status = int(head.split(b" ", 2)[1])
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
    got, body = len(rest), [rest]
    while got < length:
        chunk = sock.recv(1 << 20)
        if not chunk:
            break
        got += len(chunk)
        if keep:
            body.append(chunk)
    return status, (b"".join(body) if keep else got)


def batch_body(queries, json_batch):
    with open(queries, encoding="utf-8") as f:
        lines = f.read().splitlines()
    header = lines[0].split(",")
    keep = [i for i, c in enumerate(header) if c != "expected"]
    rows = [[r.split(",")[i] for i in keep] for r in lines[1:10001]]
    names = [header[i] for i in keep]
    if json_batch:
        items = []
        for r in rows:
            q = {n: v for n, v in zip(names, r) if v and n != "limit_consent"}
            items.append(q)
        return json.dumps(items).encode(), "application/json"
    text = ",".join(names) + "\n" + "\n".join(",".join(r) for r in rows) + "\n"
    return text.encode(), "text/csv"


def claims_body(total_bytes, kind):
    out = [b"IR,1,13,1,1234567,,CLINIC,202601,00,\r\n"]
    size, n = 0, 0
    if kind == "one-line":
        while size < total_bytes - 256:
            n += 1
            line = b"RE,%d,1,202601,X,1,19800123\r\n" % (n % 999999 + 1)
            out.append(line)
            size += len(line)
    else:
        si = b"SI,1,1,111000110,,288,1" + b",1" * 31 + b"\r\n"
        while size < total_bytes - 4096:
            n += 1
            rec = [b"RE,%d,1,202601,X,1,19800123\r\n" % (n % 999999 + 1),
                   b"HO,33120015,,3456,,100\r\n", b"SN,1,,,,,00\r\n"] + [si] * 27
            for line in rec:
                out.append(line)
                size += len(line)
    out.append(b"GO,%d\r\n" % n)
    return b"".join(out), n


def connect(addr, rcvbuf=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect(addr)
    return s


def metric(addr, name):
    """A metric of the server's, summed over its labels."""
    s = connect(addr)
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
    status, text = read_response(s, keep=True)
    s.close()
    return sum(int(float(m)) for m in re.findall(
        rb"\n" + name.encode() + rb"(?:\{[^}]*\})? (\S+)", text))


def refusals(addr):
    s = connect(addr)
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
    buf = b""
    while b"shikaku_memory_budget_refusals_total " not in buf or not buf.endswith(b"\n"):
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
        if len(buf) > 1 << 20:
            break
    s.close()
    m = re.search(rb"\nshikaku_memory_budget_refusals_total (\d+)", buf)
    return int(m.group(1)) if m else None


def back_to_rest(pid, at_rest, limit_s=30):
    """Seconds until the RSS is within 10% of `at_rest`, or None."""
    t = time.time()
    while time.time() - t < limit_s:
        if rss_bytes(pid) <= at_rest * 1.1:
            return round(time.time() - t, 2)
        time.sleep(0.05)
    return None


def scenario_idle(addr, args, body, ctype):
    socks, statuses = [], {}
    req = request("/v1/batch", body, ctype)
    for _ in range(args.clients):
        s = connect(addr)
        s.sendall(req)
        status, n = read_response(s)
        statuses[status] = statuses.get(status, 0) + 1
        socks.append(s)
    return socks, statuses, {"answer_bytes": n}


def scenario_silent(addr, args, body, ctype):
    socks = []
    req = request("/v1/batch", body, ctype)
    for _ in range(args.clients):
        s = connect(addr, rcvbuf=4096)
        s.sendall(req)
        socks.append(s)
    time.sleep(2)
    return socks, {}, {}


def scenario_claims(addr, args, _body, _ctype):
    body, receipts = claims_body(args.claims_bytes, args.claims_kind)
    req = request("/v1/claims", body, "application/octet-stream")
    statuses, lock, socks = {}, threading.Lock(), []

    def one():
        s = connect(addr)
        try:
            s.sendall(req)
            status, _ = read_response(s)
        except OSError:
            status = "reset"
        with lock:
            statuses[status] = statuses.get(status, 0) + 1
            socks.append(s)

    threads = [threading.Thread(target=one) for _ in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return socks, statuses, {"receipts": receipts, "body_bytes": len(body)}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--queries", required=True)
    p.add_argument("--scenario", choices=["idle", "silent", "claims"], required=True)
    p.add_argument("--clients", type=int, default=300)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--budget-bytes", type=int, default=0)
    p.add_argument("--json-batch", action="store_true")
    p.add_argument("--claims-bytes", type=int, default=256 << 20)
    p.add_argument("--claims-kind", choices=["one-line", "hospital"], default="hospital")
    args = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    body, ctype = batch_body(args.queries, args.json_batch)
    proc, addr = start_server(args)
    try:
        warm_up(addr, body, ctype)
        time.sleep(1)
        at_rest = rss_bytes(proc.pid)
        anon_at_rest = anon_bytes(proc.pid)
        sampler = Sampler(proc.pid)
        sampler.start()
        run = {"idle": scenario_idle, "silent": scenario_silent, "claims": scenario_claims}
        socks, statuses, extra = run[args.scenario](addr, args, body, ctype)
        held = rss_bytes(proc.pid)
        refused = refusals(addr)
        for s in socks:
            s.close()
        open_now = [metric(addr, "shikaku_open_connections")]
        back_s = back_to_rest(proc.pid, at_rest)
        open_now.append(metric(addr, "shikaku_open_connections"))
        sampler.stop = True
        print(json.dumps({
            "scenario": args.scenario, "clients": args.clients, "threads": args.threads,
            "budget_bytes": args.budget_bytes or 1 << 30,
            "batch": "json" if args.json_batch else "csv", "batch_body_bytes": len(body),
            **({"claims_kind": args.claims_kind} if args.scenario == "claims" else {}),
            **extra,
            "statuses": {str(k): v for k, v in statuses.items()},
            "budget_refusals": refused,
            "rss_at_rest_mib": round(at_rest / 2**20, 1),
            "rss_peak_mib": round(sampler.peak / 2**20, 1),
            "rss_held_mib": round(held / 2**20, 1),
            "seconds_back_within_10pct": back_s,
            "open_connections_at_close_and_end": open_now,
            "rss_after_mib": round(rss_bytes(proc.pid) / 2**20, 1),
            "anon_at_rest_mib": round(anon_at_rest / 2**20, 1),
            "anon_after_mib": round(anon_bytes(proc.pid) / 2**20, 1),
        }))
    finally:
        proc.kill()
        proc.wait()


if __name__ == "__main__":
    main()
