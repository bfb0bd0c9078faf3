#!/usr/bin/env python3
"""Host side of the VM harness (test/vm/lib/vm.sh): talks to a running qemu.

  vmctl.py sh SOCKET TIMEOUT      runs stdin as a bash script in the guest
                                  through the guest's vm-shell service (a
                                  virtio-serial port); prints the script's
                                  stdout and stderr, exits with its status
                                  (124: timed out, 125: no answer / no socket)
  vmctl.py qmp SOCKET COMMAND [ARGUMENTS_JSON]
                                  one QMP command; prints its "return" as JSON

Protocol on the port (one line each, ASCII):
  host  -> guest  P NONCE             ping (repeated until answered: the guest
                                      drops what arrives while its end is closed)
  guest -> host   P NONCE             pong
  host  -> guest  C NONCE B64SCRIPT   run
  guest -> host   R NONCE RC B64OUT B64ERR
Lines with another nonce (answers to a caller that gave up) are skipped.
"""
import base64
import json
import os
import socket
import sys
import time

PING_EVERY_S = 0.5


def connect(path, deadline):
    """Connects to qemu's unix socket; retries while qemu is starting."""
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
            return sock
        except OSError as error:
            sock.close()
            if time.monotonic() >= deadline:
                raise TimeoutError(f"cannot connect to {path}: {error}") from error
            time.sleep(0.2)


def read_lines(sock, deadline, buffer):
    """Yields complete lines until the deadline; buffer keeps a partial line."""
    while True:
        while b"\n" in buffer[0]:
            line, buffer[0] = buffer[0].split(b"\n", 1)
            yield line.decode("ascii", "replace")
        left = deadline - time.monotonic()
        if left <= 0:
            return
        sock.settimeout(min(left, PING_EVERY_S))
        try:
            chunk = sock.recv(1 << 16)
        except socket.timeout:
            yield None  # a tick: the caller may ping again
            continue
        if not chunk:
            raise ConnectionError("qemu closed the shell socket (the VM is gone)")
        buffer[0] += chunk


def run_shell(path, timeout_s, script):
    deadline = time.monotonic() + timeout_s
    nonce = base64.b16encode(os.urandom(8)).decode()
    sock = connect(path, deadline)
    buffer = [b""]
    sock.sendall(f"P {nonce}\n".encode())
    for line in read_lines(sock, deadline, buffer):
        if line is None:
            sock.sendall(f"P {nonce}\n".encode())
        elif line == f"P {nonce}":
            break
    else:
        sys.stderr.write(f"vmctl: the guest's vm-shell did not answer within {timeout_s}s\n")
        return 125
    sock.sendall(f"C {nonce} {base64.b64encode(script).decode()}\n".encode())
    for line in read_lines(sock, deadline, buffer):
        parts = (line or "").split(" ")
        if len(parts) >= 3 and parts[0] == "R" and parts[1] == nonce:
            out = base64.b64decode(parts[3]) if len(parts) > 3 else b""
            err = base64.b64decode(parts[4]) if len(parts) > 4 else b""
            sys.stdout.buffer.write(out)
            sys.stderr.buffer.write(err)
            return int(parts[2])
    sys.stderr.write(f"vmctl: the command did not end within {timeout_s}s\n")
    return 124


def run_qmp(path, command, arguments):
    deadline = time.monotonic() + 10
    sock = connect(path, deadline)
    buffer = [b""]
    lines = read_lines(sock, deadline, buffer)

    def answer():
        for line in lines:
            if line is None:
                continue
            message = json.loads(line)
            if "return" in message or "error" in message:
                return message
        raise TimeoutError(f"QMP {command}: no answer within 10s")

    for line in lines:  # the greeting
        if line is not None:
            break
    sock.sendall(b'{"execute":"qmp_capabilities"}\n')
    answer()
    request = {"execute": command}
    if arguments:
        request["arguments"] = json.loads(arguments)
    sock.sendall((json.dumps(request) + "\n").encode())
    message = answer()
    if "error" in message:
        sys.stderr.write(f"vmctl: QMP {command}: {message['error']}\n")
        return 1
    print(json.dumps(message["return"]))
    return 0


def main(argv):
    try:
        if len(argv) == 4 and argv[1] == "sh":
            return run_shell(argv[2], float(argv[3]), sys.stdin.buffer.read())
        if len(argv) in (4, 5) and argv[1] == "qmp":
            return run_qmp(argv[2], argv[3], argv[4] if len(argv) == 5 else None)
    except (OSError, TimeoutError, ConnectionError, ValueError) as error:
        sys.stderr.write(f"vmctl: {error}\n")
        return 125
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
