#!/usr/bin/env python3
"""perf/ready.py: time a server start to READY=1, as systemd sees it.

    ready.py SHIKAKU_ARGS...

Starts `SHIKAKU_ARGS` with NOTIFY_SOCKET set to a socket of its own, waits for the READY=1
notification, and prints one line: wall seconds from the start to READY=1, and the server's
CPU seconds (user + system, from /proc) at that moment. Then stops the server (SIGTERM).
"""
import os
import socket
import subprocess
import sys
import tempfile
import time

TIMEOUT_S = 600


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def main():
    args = sys.argv[1:]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "notify")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        sock.settimeout(1.0)
        env = dict(os.environ, NOTIFY_SOCKET=path)
        started = time.monotonic()
        log = open(os.path.join(tmp, "log"), "w+b")
        server = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=log)
        try:
            while True:
                if time.monotonic() - started > TIMEOUT_S:
                    sys.exit(f"no READY=1 within {TIMEOUT_S} s")
                if server.poll() is not None:
                    log.seek(0)
                    sys.exit(f"the server exited ({server.returncode}) before READY=1:\n"
                             + log.read().decode(errors="replace")[-2000:])
                try:
                    msg = sock.recv(4096).decode(errors="replace")
                except socket.timeout:
                    continue
                if "READY=1" in msg.split("\n"):
                    wall = time.monotonic() - started
                    cpu = cpu_seconds(server.pid)
                    print(f"READY=1 after {wall:.2f} s wall, {cpu:.2f} s CPU")
                    return
        finally:
            server.terminate()
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()


if __name__ == "__main__":
    main()
