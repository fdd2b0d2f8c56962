"""A loopback TCP proxy that can cut a connection after a given number of server bytes.

Used to simulate a connection lost in the middle of a response (e.g. an IMAP FETCH)::

    with DroppingProxy(server.imap_port) as proxy:
        conn = imaplib.IMAP4("127.0.0.1", proxy.port)
        ...                      # log in, select: passes through untouched
        proxy.arm(1000)          # the next 1000 bytes from the server get through, then EOF
        conn.fetch("1:*", "(RFC822)")   # -> imaplib.IMAP4.abort

Stdlib only, one thread per direction per connection.
"""

from __future__ import annotations

import socket
import threading

HOST = "127.0.0.1"


class DroppingProxy:
    """Forward connections from ``127.0.0.1:<port>`` to ``target_host:target_port``.

    When armed with ``n`` bytes, the connection through which the ``n``-th server→client byte
    (counted from arming) flows gets exactly those bytes and is then closed on both sides; the
    proxy disarms itself, so reconnecting works. ``drop_after_server_bytes`` arms it from the
    start (the greeting counts). ``accepted`` and ``drops`` count connections for assertions.
    """

    def __init__(
        self,
        target_port: int,
        drop_after_server_bytes: int | None = None,
        target_host: str = HOST,
    ):
        self.target = (target_host, target_port)
        self.accepted = 0
        self.drops = 0
        self._budget = drop_after_server_bytes
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._closed = False
        self._workers: list[threading.Thread] = []
        self._listener = socket.create_server((HOST, 0))
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    def arm(self, n_bytes: int) -> None:
        """Drop the connection once ``n_bytes`` more bytes have flowed from the server."""
        with self._lock:
            self._budget = n_bytes

    def disarm(self) -> None:
        """Forget a pending ``arm``."""
        with self._lock:
            self._budget = None

    def close(self) -> None:
        """Stop listening and cut every open connection."""
        self._closed = True
        self._thread.join()
        self._listener.close()
        with self._lock:
            conns = list(self._conns)
        for sock in conns:
            _shutdown(sock)  # their threads notice, close them and end
        for worker in self._workers:
            worker.join(5)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            client.settimeout(None)
            try:
                server = socket.create_connection(self.target, timeout=10)
                server.settimeout(None)
            except OSError:
                _shutdown(client)
                client.close()
                continue
            with self._lock:
                self.accepted += 1
                self._conns += [client, server]
            worker = threading.Thread(target=self._serve, args=(client, server), daemon=True)
            worker.start()
            self._workers.append(worker)

    def _serve(self, client: socket.socket, server: socket.socket) -> None:
        """Pump both directions; only this thread closes the pair (after both pumps ended)."""
        upstream = threading.Thread(target=self._pump, args=(client, server), daemon=True)
        upstream.start()
        self._pump(server, client, counted=True)
        upstream.join()
        with self._lock:
            self._conns = [s for s in self._conns if s not in (client, server)]
        client.close()
        server.close()

    def _pump(self, src: socket.socket, dst: socket.socket, counted: bool = False) -> None:
        try:
            while data := src.recv(65536):
                drop = False
                if counted:
                    with self._lock:
                        if self._budget is not None:
                            if len(data) >= self._budget:
                                data, drop = data[: self._budget], True
                                self._budget = None
                                self.drops += 1
                            else:
                                self._budget -= len(data)
                dst.sendall(data)
                if drop:
                    break
        except OSError:
            pass
        _shutdown(src)  # also wakes the other direction's recv
        _shutdown(dst)


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
