#!/usr/bin/env python3
"""A TCP proxy on 127.0.0.1 that delays every reply (issue 14: "Redis slow").

    delay_proxy.py LISTEN_PORT TARGET_PORT DELAY_FILE

Each accepted connection is forwarded to 127.0.0.1:TARGET_PORT. Bytes from the
client go through at once; every chunk the target sends back is held for the
number of milliseconds written in DELAY_FILE (read again for each chunk, so a
test changes the delay of open connections without a restart; missing or empty
= 0). When the target refuses or drops the connection, so does the proxy.
Prints "listening" once the socket is bound.
"""
import socket
import sys
import threading
import time


def delay_seconds(path):
    try:
        with open(path) as f:
            text = f.read().strip()
        return int(text) / 1000.0 if text else 0.0
    except (OSError, ValueError):
        return 0.0


def pump(src, dst, delay_file):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            if delay_file:
                wait = delay_seconds(delay_file)
                if wait > 0:
                    time.sleep(wait)
            dst.sendall(data)
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def serve(client, target_port, delay_file):
    try:
        upstream = socket.create_connection(("127.0.0.1", target_port), timeout=5)
        upstream.settimeout(None)
    except OSError:
        client.close()
        return
    threading.Thread(target=pump, args=(client, upstream, None), daemon=True).start()
    pump(upstream, client, delay_file)
    client.close()
    upstream.close()


def main():
    listen_port, target_port, delay_file = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", listen_port))
    server.listen(128)
    print("listening", flush=True)
    while True:
        client, _ = server.accept()
        threading.Thread(target=serve, args=(client, target_port, delay_file), daemon=True).start()


if __name__ == "__main__":
    main()
