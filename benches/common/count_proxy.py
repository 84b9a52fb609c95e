#!/usr/bin/env python3
"""A loopback TCP proxy that counts HTTP requests: prints its port, then,
on SIGUSR1, the number of requests seen so far.

    python3 benches/common/count_proxy.py http://127.0.0.1:8333
"""
import signal, socket, sys, threading

upstream = sys.argv[1].replace("http://", "").rstrip("/")
host, port = upstream.split(":")
count = 0
lock = threading.Lock()


def pump(src, dst, counting):
    global count
    tail = b""
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            if counting:
                seen = tail + data
                with lock:
                    count += seen.count(b" HTTP/1.1\r\n")
                tail = seen[-10:]
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def serve(client):
    up = socket.create_connection((host, int(port)))
    threading.Thread(target=pump, args=(client, up, True), daemon=True).start()
    pump(up, client, False)


def report(*_):
    print(count, flush=True)


signal.signal(signal.SIGUSR1, report)
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(64)
print(listener.getsockname()[1], flush=True)
while True:
    conn, _ = listener.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
