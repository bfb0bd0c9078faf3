#!/usr/bin/env python3
"""Times program starts for figure 2 of `make bench`.

usage: notify-timer.py ready|exit RUNS TIMEOUT_S -- COMMAND...
  ready: binds a fake NOTIFY_SOCKET (abstract name), runs COMMAND with it set,
         times exec -> the READY=1 datagram, then SIGTERMs COMMAND and waits.
  exit:  times exec -> exit.
Prints one JSON line: {"ms": [per run], "messages": [datagrams of the last run]}.
One extra unrecorded run first warms the page cache. Exit 2 on a timeout."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

mode, runs, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
command = sys.argv[sys.argv.index("--") + 1:]
times, messages = [], []
for run in range(runs + 1):
    env = dict(os.environ)
    sock = None
    if mode == "ready":
        name = "cloudjobs-bench-%d-%d" % (os.getpid(), run)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind("\0" + name)
        sock.settimeout(timeout)
        env["NOTIFY_SOCKET"] = "@" + name
    start = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        if mode == "ready":
            messages = []
            while True:
                data = sock.recv(1 << 16).decode("utf-8", "replace")
                messages.append(data)
                if "READY=1" in data.split("\n"):
                    break
            elapsed = time.perf_counter() - start
            child.send_signal(signal.SIGTERM)
            child.communicate(timeout=timeout)
        else:
            child.communicate(timeout=timeout)
            elapsed = time.perf_counter() - start
    except (socket.timeout, subprocess.TimeoutExpired):
        child.kill()
        _, err = child.communicate()
        print("timeout after %ss; stderr: %s" % (timeout, err.decode("utf-8", "replace")[-2000:]), file=sys.stderr)
        sys.exit(2)
    finally:
        if sock:
            sock.close()
    if run > 0:
        times.append(elapsed * 1000)
print(json.dumps({"ms": times, "messages": messages}))
