"""A loopback TCP proxy that can cut a connection, delay it, and count its round trips.

Used to simulate a connection lost in the middle of a response (e.g. an IMAP FETCH)::

    with DroppingProxy(server.imap_port) as proxy:
        conn = imaplib.IMAP4("127.0.0.1", proxy.port)
        ...                      # log in, select: passes through untouched
        proxy.arm(1000)          # the next 1000 bytes from the server get through, then EOF
        conn.fetch("1:*", "(RFC822)")   # -> imaplib.IMAP4.abort

and to see how many times a client waits for its server, as over a slow link::

    with DroppingProxy(server.imaps_port, latency=0.05) as proxy:
        ...                      # one session through proxy.port
    proxy.turns                  # [5]: the client spoke five times
    proxy.round_trips            # [4]: and waited four times (its last words were a LOGOUT)

Stdlib only, one thread per direction per connection (two with a latency).
"""

from __future__ import annotations

import queue
import socket
import threading
import time

HOST = "127.0.0.1"


class _Link:
    """The client turns of one connection (see :class:`DroppingProxy`)."""

    def __init__(self):
        self.turns = 0
        self.unanswered = False  # the client closed without waiting for its last turn's answer
        self._lock = threading.Lock()
        self._answered = True  # the client has had server data it may react to (at start: yes)

    def client_sent(self) -> None:
        with self._lock:
            if self._answered:
                self.turns += 1
                self._answered = False

    def server_delivers(self) -> None:
        # set before the data is sent on to the client: the client cannot react to it earlier
        with self._lock:
            self._answered = True

    def client_closed(self) -> None:
        with self._lock:
            self.unanswered = self.turns > 0 and not self._answered


class DroppingProxy:
    """Forward connections from ``127.0.0.1:<port>`` to ``target_host:target_port``.

    When armed with ``n`` bytes, the connection through which the ``n``-th server→client byte
    (counted from arming) flows gets exactly those bytes and is then closed on both sides; the
    proxy disarms itself, so reconnecting works. ``drop_after_server_bytes`` arms it from the
    start (the greeting counts). ``accepted`` and ``drops`` count connections for assertions.

    ``latency`` (seconds, a round trip) holds every chunk, and a closed side, ``latency / 2``
    in each direction before passing it on, in order; connections do not wait for each other.
    The client's TCP handshake with the proxy itself stays local: over a real link it costs one
    round trip more per connection.

    ``turns`` lists, per connection in the order accepted, how many times the client sent data
    after having received server data (or at the start). ``round_trips`` is the same less a
    last turn the client did not wait for: it closed before any server data reached it after
    that turn (a LOGOUT sent without reading its answer). Neither can count too few; too many
    only when the server sends unasked while the client speaks (TLS session tickets after
    STARTTLS), or, without a latency, when a fast server's answer passes a client's close.
    """

    def __init__(
        self,
        target_port: int,
        drop_after_server_bytes: int | None = None,
        target_host: str = HOST,
        latency: float = 0.0,
    ):
        self.target = (target_host, target_port)
        self.latency = latency
        self.accepted = 0
        self.drops = 0
        self._budget = drop_after_server_bytes
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._links: list[_Link] = []
        self._closed = False
        self._workers: list[threading.Thread] = []
        self._listener = socket.create_server((HOST, 0))
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    @property
    def turns(self) -> list[int]:
        """Client turns per connection (see the class docstring)."""
        with self._lock:
            return [link.turns for link in self._links]

    @property
    def round_trips(self) -> list[int]:
        """Client turns per connection that the client waited for (see the class docstring)."""
        with self._lock:
            return [link.turns - link.unanswered for link in self._links]

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
            link = _Link()
            with self._lock:
                self.accepted += 1
                self._conns += [client, server]
                self._links.append(link)
            worker = threading.Thread(target=self._serve, args=(client, server, link), daemon=True)
            worker.start()
            self._workers.append(worker)

    def _serve(self, client: socket.socket, server: socket.socket, link: _Link) -> None:
        """Pump both directions; only this thread closes the pair (after both pumps ended)."""
        upstream = threading.Thread(target=self._pump, args=(client, server, link), daemon=True)
        upstream.start()
        self._pump(server, client, link, from_server=True)
        upstream.join()
        with self._lock:
            self._conns = [s for s in self._conns if s not in (client, server)]
        client.close()
        server.close()

    def _pump(
        self, src: socket.socket, dst: socket.socket, link: _Link, from_server: bool = False
    ) -> None:
        """Forward ``src`` to ``dst`` until EOF, an error or a drop, then shut both down.

        With a latency, a second thread sends each chunk when it is due, so reading goes on
        meanwhile: a long response is delayed once, not once per chunk.
        """
        delay = self.latency / 2
        outbox: queue.SimpleQueue | None = None
        if delay:
            outbox = queue.SimpleQueue()
            writer = threading.Thread(
                target=self._deliver, args=(outbox, src, dst, link, from_server), daemon=True
            )
            writer.start()
        try:
            while data := src.recv(65536):
                drop = False
                if from_server:
                    with self._lock:
                        if self._budget is not None:
                            if len(data) >= self._budget:
                                data, drop = data[: self._budget], True
                                self._budget = None
                                self.drops += 1
                            else:
                                self._budget -= len(data)
                else:
                    link.client_sent()
                if outbox is None:
                    _forward(dst, data, link, from_server)
                else:
                    outbox.put((time.monotonic() + delay, data))
                if drop:
                    break
        except OSError:
            pass
        if not from_server:
            link.client_closed()
        if outbox is not None:
            outbox.put((time.monotonic() + delay, None))  # the close is delayed too
            writer.join()
        _shutdown(src)  # also wakes the other direction's recv
        _shutdown(dst)

    @staticmethod
    def _deliver(outbox, src, dst, link: _Link, from_server: bool) -> None:
        """Send ``outbox``'s chunks to ``dst`` when due, until its end marker (``None``)."""
        while True:
            due, data = outbox.get()
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            if data is None:
                return
            try:
                _forward(dst, data, link, from_server)
            except OSError:
                _shutdown(src)  # the reader notices and ends
                _shutdown(dst)
                return


def _forward(dst: socket.socket, data: bytes, link: _Link, from_server: bool) -> None:
    if from_server:
        link.server_delivers()
    dst.sendall(data)


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
