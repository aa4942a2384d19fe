"""A stand-in for `kubectl port-forward svc/NAME :PORT -n NS --address 127.0.0.1 ...`.

The API server double does not speak kubectl's streaming protocol, so tests put this script in
place of kubectl (AUTODEVHUB_KUBECTL). It answers like kubectl ("Forwarding from 127.0.0.1:N ->
PORT") and relays TCP to the address KUBECTL_STANDIN_TARGETS maps the Service to, and appends
its argv to KUBECTL_STANDIN_LOG.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading


def relay(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for s in (source, sink):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


def main() -> int:
    args = sys.argv[1:]
    with open(os.environ["KUBECTL_STANDIN_LOG"], "a") as log:
        log.write(json.dumps(args) + "\n")
    if not args or args[0] != "port-forward" or not args[1].startswith("svc/"):
        print(f"error: unsupported arguments {args}", file=sys.stderr)
        return 1
    service, port = args[1][4:], args[2].lstrip(":")
    targets = json.loads(os.environ["KUBECTL_STANDIN_TARGETS"])
    if service not in targets:
        print(f'Error from server (NotFound): services "{service}" not found', flush=True)
        return 1
    host, target_port = targets[service].rsplit(":", 1)
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    print(f"Forwarding from 127.0.0.1:{server.getsockname()[1]} -> {port}", flush=True)
    while True:
        client, _ = server.accept()
        upstream = socket.create_connection((host, int(target_port)))
        threading.Thread(target=relay, args=(client, upstream), daemon=True).start()
        threading.Thread(target=relay, args=(upstream, client), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
