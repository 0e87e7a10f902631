"""Loopback servers for the tests of xcc.py: real sockets on 127.0.0.1, no mocks.

- :class:`ScriptedServer`: an HTTP/1.1 keep-alive server (optionally TLS) that answers each
  request with ``handler(request)`` (a :class:`Reply`, or raw bytes written as they are).
- :class:`RawServer`: a TCP server that hands each connection to ``serve(sock, index)``, for
  servers that misbehave on purpose (cut bodies, garbage, silence, dropped sockets);
  ``read(sock)`` reads one request. :class:`ScriptedServer` is one of these.
- Both record every request as a :class:`Recorded` (its raw request line and header fields,
  parsed views of them, its body, its TCP connection, whether it was well formed) and count
  TCP connections when they are accepted; ``settled_connections()`` counts them exactly, for
  "nothing was sent" checks. They start and stop in well under a millisecond.
- :class:`Proxy`: an HTTP proxy with CONNECT tunnels and absolute-form requests, optional
  Basic credentials, recording the requests it reads. :class:`Tinyproxy`: a real tinyproxy.
- :func:`make_certificates` (with the ``openssl`` CLI) and :func:`server_context`: a test CA,
  certificates signed by it, and the server-side SSL context for one of them.
- :func:`closed_port` (nothing listens there) and :func:`blackhole` (connecting hangs).
- :class:`PathServer`: answers scripted paths with exact bytes and every other request with
  its own path (:func:`own_answer`), so that an answer read as another request's shows;
  :class:`UnrulyServer`: answers with the path but at random sends stray bytes, resets
  mid-body or drops the connection.

Standard library only, CPython 3.6 to 3.13; ``xcc.py`` never imports this module.
"""

import base64
import contextlib
import http.client
import json
import os
import random
import select
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import time
from urllib.parse import parse_qs, quote, urlsplit

__all__ = [
    "PathServer",
    "Proxy",
    "RawServer",
    "Recorded",
    "Reply",
    "ScriptedServer",
    "Tinyproxy",
    "UnrulyServer",
    "blackhole",
    "closed_port",
    "json_reply",
    "make_certificates",
    "own_answer",
    "server_context",
]

# The characters of a method or a header name (RFC 9110 §5.6.2).
_TOKEN_CHARS = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+-.^_`|~"
)
_DIGITS = frozenset("0123456789")


# ------------------------------------------------------------------------------ requests


class Recorded:
    """One request as its bytes reached the server.

    Attributes:
        request_line (str): the first line, as sent
        method (str), target (str): its first two words
        path (str): the target without its query (not percent-decoded)
        query (dict): the target's query, ``parse_qs(..., keep_blank_values=True)``
        raw_headers (list): ``(name, value)`` pairs in the order received, names as sent,
            values without surrounding whitespace
        headers (dict): lower-cased name -> value (the last one of a repeated name)
        body (bytes): the ``Content-Length`` bytes that followed the head
        connection (int): which TCP connection of the server it came on (1, 2, ...)
        well_formed (bool): whether a strict HTTP/1.1 server would take it: ``METHOD target
            HTTP/1.1``, every field ``token: value`` without control characters, one
            ``Host``, at most one ``Content-Length`` and the whole body, no chunked body
        pipelined (bool): whether bytes of another request arrived before the response to
            this one was sent (two writers on one socket; xcc never pipelines)
    """

    def __init__(self, head, body, connection, pipelined=False):
        lines = head.decode("latin-1").split("\r\n")
        self.request_line = lines[0]
        self.method, self.target = (self.request_line.split(" ") + ["", ""])[:2]
        try:
            parts = urlsplit(self.target)
            self.path, query = parts.path, parts.query
        except ValueError:  # a malformed target is recorded, not refused
            self.path, query = self.target, ""
        self.query = parse_qs(query, keep_blank_values=True)
        self.raw_headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.raw_headers.append((name, value.strip(" \t")))  # OWS (RFC 9110 §5.6.3)
        self.headers = {name.lower(): value for name, value in self.raw_headers}
        self.body = body
        self.connection = connection
        self.pipelined = pipelined
        self.well_formed = _well_formed(lines, body)

    def header_values(self, name):
        """Returns the values of every field called ``name`` (any case), in order."""
        return [value for field, value in self.raw_headers if field.lower() == name.lower()]

    def __repr__(self):
        return f"<Recorded {self.request_line!r} on connection {self.connection}>"


def _well_formed(lines, body):
    """Returns whether a request head (split in lines) and body are valid HTTP/1.1
    (RFC 9112 §3, §5, §6) for a server that reads ``Content-Length`` bodies."""
    parts = lines[0].split(" ")
    if (
        len(parts) != 3
        or parts[2] != "HTTP/1.1"
        or not parts[0]
        or not _TOKEN_CHARS.issuperset(parts[0])
        or not parts[1]
        or not all("!" <= char <= "~" for char in parts[1])
    ):
        return False
    names, lengths = [], []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name or not _TOKEN_CHARS.issuperset(name):
            return False
        if any((char < " " and char != "\t") or char == "\x7f" for char in value):
            return False
        names.append(name.lower())
        if name.lower() == "content-length":
            lengths.append(value.strip(" \t"))
    if names.count("host") != 1 or "transfer-encoding" in names or len(lengths) > 1:
        return False
    if lengths and (not lengths[0] or not _DIGITS.issuperset(lengths[0])):
        return False
    return len(body) == (int(lengths[0]) if lengths else 0)


class _Reader:
    """Reads requests (head, then a ``Content-Length`` body) from one socket, keeping the
    bytes that arrive beyond the request being read."""

    def __init__(self, sock, index):
        self.sock = sock
        self.index = index
        self.buffer = b""

    def request(self):
        """Returns ``(head, body)`` of the next request, or ``None`` if the client closed."""
        while b"\r\n\r\n" not in self.buffer:
            if not self._fill():
                return None
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length" and value.strip().isdigit():
                length = int(value)
        while len(self.buffer) < length and self._fill():
            pass
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return head, body

    def take(self):
        """Returns and forgets the bytes read beyond the last request."""
        data, self.buffer = self.buffer, b""
        return data

    def _fill(self):
        data = self.sock.recv(65536)
        self.buffer += data
        return bool(data)


class Reply:
    """What a :class:`ScriptedServer` handler returns: a status, headers and a body.

    ``Content-Length`` is added unless ``headers`` has it or ``Transfer-Encoding``; the
    reason defaults to the standard one; ``Connection: close`` closes the connection after
    the reply.
    """

    def __init__(self, status=200, body=b"", headers=(), reason=None):
        self.status = status
        self.body = body if isinstance(body, bytes) else body.encode("utf-8")
        self.headers = list(headers.items()) if hasattr(headers, "items") else list(headers)
        self.reason = reason

    def serialize(self, head_only=False):
        """Returns the bytes of the response (only its head for a HEAD request)."""
        reason = self.reason or http.client.responses.get(self.status, "Unknown")
        lines = [f"HTTP/1.1 {self.status} {reason}"]
        lines += [f"{name}: {value}" for name, value in self.headers]
        names = {name.lower() for name, _ in self.headers}
        if "content-length" not in names and "transfer-encoding" not in names:
            lines.append(f"Content-Length: {len(self.body)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return head if head_only else head + self.body

    @property
    def closes(self):
        """bool: whether the reply says ``Connection: close``."""
        return any(
            name.lower() == "connection" and "close" in value.lower()
            for name, value in self.headers
        )


def json_reply(status, obj, headers=()):
    """Returns a :class:`Reply` with ``obj`` serialised as JSON."""
    headers = list(headers.items()) if hasattr(headers, "items") else list(headers)
    return Reply(status, json.dumps(obj), [("Content-Type", "application/json")] + headers)


# ------------------------------------------------------------------------------- servers


class RawServer:
    """A TCP server on 127.0.0.1 that hands each accepted socket to ``serve(sock, index)``
    in a thread (``index`` counts connections from 1), then closes it. ``tls`` is a
    server-side ``ssl.SSLContext`` (see :func:`server_context`). Use as a context manager.

    ``connections`` counts TCP connections when they are accepted, before any TLS
    handshake; ``requests`` collects what :meth:`read` read, as :class:`Recorded`.
    """

    def __init__(self, serve, tls=None):
        self.serve = serve
        self.tls = tls
        self.connections = 0
        self.requests = []
        self._lock = threading.Lock()
        self._open = set()  # the sockets of the connections being served
        self._readers = {}  # socket given to serve -> _Reader
        self._probes = {}  # local address of a settled_connections() probe -> Event
        self._closed = False
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)  # a burst of clients must not wait for SYN resends
        self.host = "127.0.0.1"
        self.port = self._listener.getsockname()[1]
        self.url = "{}://127.0.0.1:{}".format("https" if tls else "http", self.port)

    def __enter__(self):
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc_info):
        with self._lock:
            self._closed = True
            sockets = list(self._open)
        _shut(self._listener)
        for sock in sockets:
            # Shut down only: the socket's own thread wakes up and closes it. Closing a TLS
            # socket here races that thread's read (PyPy's ssl then raises AttributeError).
            try:
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass

    def read(self, sock):
        """Reads the next request on ``sock`` (a socket given to ``serve``) and records it.

        Returns:
            Recorded: the request, or ``None`` if the client closed the connection first
        """
        reader = self._readers[sock]
        request = reader.request()
        if request is None:
            return None
        recorded = Recorded(request[0], request[1], reader.index, pipelined=bool(reader.buffer))
        with self._lock:
            self.requests.append(recorded)
        return recorded

    def settled_connections(self):
        """Returns how many connections the server has accepted, counting every connection
        attempt made before this call: a probe connects and waits until the server accepts
        it (a listener accepts in order). The probe itself is not counted."""
        probe = socket.socket()
        try:
            probe.bind(("127.0.0.1", 0))
            accepted = threading.Event()
            with self._lock:
                self._probes[probe.getsockname()] = accepted
            probe.settimeout(5)
            probe.connect((self.host, self.port))
            if not accepted.wait(5):
                raise RuntimeError("the server did not accept its probe")
        finally:
            probe.close()
        return self.connections

    def drop_idle_connections(self):
        """Closes every connection the server holds, as a server whose keep-alive expired."""
        with self._lock:
            sockets = list(self._open)
        for sock in sockets:
            _shut(sock)

    def _accept(self):
        while True:
            try:
                sock, address = self._listener.accept()
            except OSError:
                return
            with self._lock:
                probe = self._probes.pop(address, None)
                closed = self._closed
                if probe is None and not closed:
                    self.connections += 1
                    index = self.connections
                    self._open.add(sock)
            if probe is not None or closed:
                sock.close()
                if probe is not None:
                    probe.set()
                continue
            # Replies that go out in several writes must not wait for the client's ACKs.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._run, args=(sock, index), daemon=True).start()

    def _run(self, sock, index):
        try:
            if self.tls is not None:
                plain, sock = sock, self.tls.wrap_socket(sock, server_side=True)
                with self._lock:
                    self._open.discard(plain)
                    self._open.add(sock)
            with self._lock:
                self._readers[sock] = _Reader(sock, index)
            self.serve(sock, index)
        except OSError:
            pass  # a client that hung up or refused our certificate is part of the test
        finally:
            with self._lock:
                self._readers.pop(sock, None)
                self._open.discard(sock)
            _shut(sock)

    def _take_buffered(self, sock):
        """Returns the bytes that :meth:`read` received on ``sock`` beyond the last request."""
        return self._readers[sock].take()


class ScriptedServer(RawServer):
    """An HTTP/1.1 keep-alive server on 127.0.0.1 that answers each request with
    ``handler(request)``: a :class:`Reply`, or bytes written as they are (for framings a
    Reply does not make). Set ``handler`` at any time; by default it answers 200 ``{}``.
    ``tls`` is a server-side ``ssl.SSLContext`` for HTTPS. Use as a context manager.
    The connection is closed after a reply when the request or the reply says
    ``Connection: close``.
    """

    def __init__(self, handler=None, tls=None):
        RawServer.__init__(self, self._answer, tls)
        self.handler = handler or (lambda request: Reply(200, b"{}"))

    def _answer(self, sock, index):
        while True:
            request = self.read(sock)
            if request is None:
                return
            reply = self.handler(request)
            if isinstance(reply, bytes):
                sock.sendall(reply)
                continue
            sock.sendall(reply.serialize(head_only=request.method == "HEAD"))
            if reply.closes or "close" in request.headers.get("connection", "").lower():
                return


class Proxy:
    """An HTTP proxy on 127.0.0.1: ``CONNECT`` tunnels and absolute-form requests.

    Args:
        credentials (tuple, optional): ``(user, password)`` it requires, else it answers 407
        refuse (int, optional): a status with which to refuse every CONNECT
        pass_credentials (bool): whether an absolute-form request is forwarded with its
            ``Proxy-Authorization``, as RFC 9110 §11.7.1 allows

    ``requests`` records, as :class:`Recorded`, the requests the proxy itself read (the
    CONNECTs and the absolute-form requests, not what goes through a tunnel);
    ``connections`` counts the TCP connections made to it.
    """

    def __init__(self, credentials=None, refuse=None, pass_credentials=False):
        self.credentials = credentials
        self.refuse = refuse
        self.dropped = {"connection", "keep-alive"}
        if not pass_credentials:
            self.dropped.add("proxy-authorization")
        self._server = RawServer(self._serve)
        self.host = "127.0.0.1"
        self.port = self._server.port

    @property
    def requests(self):
        return self._server.requests

    @property
    def connections(self):
        return self._server.connections

    def url(self, user=None, password=None, host="127.0.0.1"):
        """Returns the proxy URL, with ``user:password@`` (percent-encoded) if ``user`` is
        given, naming the proxy's address as ``host``."""
        auth = ""
        if user is not None:
            auth = "{}:{}@".format(quote(user, safe=""), quote(password or "", safe=""))
        return f"http://{auth}{host}:{self.port}"

    def __enter__(self):
        self._server.__enter__()
        return self

    def __exit__(self, *exc_info):
        self._server.__exit__(*exc_info)

    def _authorized(self, request):
        if self.credentials is None:
            return True
        expected = "Basic " + base64.b64encode(
            "{}:{}".format(*self.credentials).encode("utf-8")
        ).decode("ascii")
        return request.headers.get("proxy-authorization") == expected

    def _serve(self, client, index):
        while True:
            request = self._server.read(client)
            if request is None:
                return
            if not self._authorized(request):
                client.sendall(
                    b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                    b'Proxy-Authenticate: Basic realm="test"\r\nContent-Length: 0\r\n\r\n'
                )
                continue
            if request.method != "CONNECT":
                self._forward(client, request)
                continue
            if self.refuse:
                client.sendall(
                    f"HTTP/1.1 {self.refuse} Refused\r\nContent-Length: 0\r\n\r\n".encode()
                )
                return
            host, _, port = request.target.rpartition(":")
            upstream = socket.create_connection((host.strip("[]"), int(port)))
            client.sendall(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            upstream.sendall(self._server._take_buffered(client))
            _relay(client, upstream)
            return

    def _forward(self, client, request):
        parts = urlsplit(request.target)
        upstream = socket.create_connection((parts.hostname, parts.port or 80))
        try:
            origin_form = (parts.path or "/") + ("?" + parts.query if parts.query else "")
            lines = [f"{request.method} {origin_form} HTTP/1.1"]
            lines += [
                f"{name}: {value}"
                for name, value in request.raw_headers
                if name.lower() not in self.dropped
            ]
            head = "\r\n".join(lines + ["Connection: close", "", ""]).encode("latin-1")
            upstream.sendall(head + request.body)
            response = b""
            while True:
                chunk = upstream.recv(65536)
                if not chunk:
                    break
                response += chunk
        finally:
            upstream.close()
        head, _, rest = response.partition(b"\r\n\r\n")
        kept = [line for line in head.split(b"\r\n") if not line.lower().startswith(b"connection:")]
        client.sendall(b"\r\n".join(kept) + b"\r\n\r\n" + rest)


def _relay(one, other):
    """Copies bytes both ways between two sockets until either side closes."""
    sockets = [one, other]
    try:
        while True:
            readable, _, _ = select.select(sockets, [], [], 30)
            if not readable:
                return
            for sock in readable:
                data = sock.recv(65536)
                if not data:
                    return
                (other if sock is one else one).sendall(data)
    except (OSError, ValueError):  # ValueError: select() on a socket the test just closed
        return
    finally:
        _shut(other)


class Tinyproxy:
    """A real ``tinyproxy`` process on 127.0.0.1 that requires the Basic credentials
    ``user``/``password`` and allows CONNECT to ``connect_port`` only, as an operator would
    configure it. Use as a context manager.

    Raises:
        OSError: if ``tinyproxy`` is not installed
        RuntimeError: if it did not start listening within 10 seconds
    """

    user = "user"
    password = "s3cret-pw"  # tinyproxy's configuration accepts no '@' or ':' here

    def __init__(self, connect_port):
        self.connect_port = connect_port
        self.host = "127.0.0.1"
        self.port = closed_port()
        self._directory = None
        self._process = None

    def url(self, password=None):
        """Returns the proxy URL with the credentials (or another ``password``)."""
        return f"http://{self.user}:{password or self.password}@127.0.0.1:{self.port}"

    def __enter__(self):
        self._directory = tempfile.mkdtemp(prefix="tinyproxy-")
        conf = os.path.join(self._directory, "tinyproxy.conf")
        with open(conf, "w") as file:
            file.write(
                "Port {}\nListen 127.0.0.1\nTimeout 30\nMaxClients 20\nAllow 127.0.0.1\n"
                "BasicAuth {} {}\n"
                # The default allows CONNECT to 443 and 563 only; no line allows every port.
                "ConnectPort {}\nLogLevel Critical\n"
                'LogFile "{}"\nPidFile "{}"\n'.format(
                    self.port,
                    self.user,
                    self.password,
                    self.connect_port,
                    os.path.join(self._directory, "tinyproxy.log"),
                    os.path.join(self._directory, "tinyproxy.pid"),
                )
            )
        try:
            self._process = subprocess.Popen(
                ["tinyproxy", "-d", "-c", conf],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection((self.host, self.port), timeout=1).close()
                    return self
                except OSError:
                    if self._process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"tinyproxy did not start on port {self.port}")
                    time.sleep(0.01)
        except BaseException:
            self.__exit__()
            raise

    def __exit__(self, *exc_info):
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)


def _shut(sock):
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


# --------------------------------------------------------------------------------- ports


def closed_port():
    """Returns a loopback port on which nothing listens (a connection to it is refused;
    a server may bind it)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


@contextlib.contextmanager
def blackhole():
    """Yields the port of a loopback listener whose accept queue is full, so that the SYN of
    any further connection is dropped and ``connect()`` hangs until its timeout."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            try:
                filler.connect(("127.0.0.1", port))
            except (BlockingIOError, InterruptedError):
                pass
            fillers.append(filler)
        # Wait until the first one is established: from then on the queue is full.
        select.select([], [fillers[0]], [], 2)
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


# -------------------------------------------------------------------------- certificates


def make_certificates(directory):
    """Makes a test CA and certificates with ``openssl``.

    Returns:
        dict: paths: ``ca`` (a CA whose basicConstraints is critical), ``ca_directory`` (a
        directory holding ``ca`` under its OpenSSL subject-hash name, for ``capath``),
        ``cert``/``key`` (for ``localhost`` and ``127.0.0.1``, signed by ``ca``),
        ``localhost_cert``/``localhost_key`` (for ``localhost`` only, no IP address,
        signed by ``ca``), ``other_name_cert``/``other_name_key`` (for ``xcc.invalid``
        only, signed by ``ca``), ``expired_cert``/``expired_key`` (valid in January 2020
        only) and ``future_cert``/``future_key`` (valid in January 2040 only), both for
        ``localhost`` and ``127.0.0.1`` and signed by ``ca``, ``lax_ca`` (a CA whose
        basicConstraints is *not* critical, like some corporate inspection CAs),
        ``lax_cert``/``lax_key`` (signed by that one), and ``self_signed``/``self_signed_key``
        (trusted by nobody)

    Raises:
        OSError: if ``openssl`` is not installed
        subprocess.CalledProcessError: if it failed
    """

    def path(name):
        return os.path.join(directory, name)

    def openssl(*args):
        return subprocess.run(
            ("openssl",) + args, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        ).stdout

    key_options = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    # Certificates out of their dates: {name: (notBefore, notAfter)}.
    dated = {
        "expired_cert": ("20200101000000Z", "20200131000000Z"),
        "future_cert": ("20400101000000Z", "20400131000000Z"),
    }
    with open(path("dated.cnf"), "w") as file:
        file.write(
            f"[ca]\ndefault_ca=test\n[test]\ndatabase={path('index.txt')}\n"
            f"new_certs_dir={directory}\nserial={path('serial.txt')}\ndefault_md=sha256\n"
            "policy=any\nunique_subject=no\n[any]\ncommonName=supplied\n"
        )
    open(path("index.txt"), "w").close()
    with open(path("serial.txt"), "w") as file:
        file.write("1000\n")
    for name, constraints in (("ca", "critical,CA:TRUE"), ("lax_ca", "CA:TRUE")):
        with open(path(name + ".cnf"), "w") as file:
            file.write(
                "[req]\ndistinguished_name=dn\nx509_extensions=ext\n[dn]\n[ext]\n"
                f"basicConstraints={constraints}\nkeyUsage=critical,keyCertSign,cRLSign\n"
                "subjectKeyIdentifier=hash\n"
            )
        openssl("req", "-x509", *key_options, "-keyout", path(name + ".key"), "-out",
                path(name + ".pem"), "-days", "30", "-subj", "/CN=xcc.py test " + name,
                "-config", path(name + ".cnf"))  # fmt: skip
    leaves = (
        ("cert", "ca", "DNS:localhost,IP:127.0.0.1"),
        ("localhost_cert", "ca", "DNS:localhost"),
        ("other_name_cert", "ca", "DNS:xcc.invalid"),
        ("lax_cert", "lax_ca", "DNS:localhost,IP:127.0.0.1"),
    )
    for leaf, ca, names in leaves + tuple((leaf, "ca", leaves[0][2]) for leaf in dated):
        with open(path(leaf + ".cnf"), "w") as file:
            file.write(
                "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                f"extendedKeyUsage=serverAuth\nsubjectAltName={names}\n"
                "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
            )
        openssl("req", *key_options, "-keyout", path(leaf + ".key"), "-out", path(leaf + ".csr"),
                "-subj", "/CN=localhost")  # fmt: skip
        if leaf in dated:
            # OpenSSL 3.0's x509 has no -not_before, so `openssl ca` signs with explicit dates.
            openssl("ca", "-batch", "-config", path("dated.cnf"), "-cert", path("ca.pem"),
                    "-keyfile", path("ca.key"), "-in", path(leaf + ".csr"), "-out",
                    path(leaf + ".pem"), "-extfile", path(leaf + ".cnf"), "-notext",
                    "-startdate", dated[leaf][0], "-enddate", dated[leaf][1])  # fmt: skip
            continue
        openssl("x509", "-req", "-in", path(leaf + ".csr"), "-CA", path(ca + ".pem"), "-CAkey",
                path(ca + ".key"), "-CAcreateserial", "-out", path(leaf + ".pem"), "-days", "30",
                "-extfile", path(leaf + ".cnf"))  # fmt: skip
    openssl("req", "-x509", *key_options, "-keyout", path("self_signed.key"), "-out",
            path("self_signed.pem"), "-days", "30", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1")  # fmt: skip
    subject_hash = openssl("x509", "-hash", "-noout", "-in", path("ca.pem")).decode().strip()
    os.makedirs(path("ca_directory"))
    shutil.copy(path("ca.pem"), os.path.join(path("ca_directory"), subject_hash + ".0"))
    return {
        "ca": path("ca.pem"),
        "ca_directory": path("ca_directory"),
        "cert": path("cert.pem"),
        "key": path("cert.key"),
        "localhost_cert": path("localhost_cert.pem"),
        "localhost_key": path("localhost_cert.key"),
        "other_name_cert": path("other_name_cert.pem"),
        "other_name_key": path("other_name_cert.key"),
        "expired_cert": path("expired_cert.pem"),
        "expired_key": path("expired_cert.key"),
        "future_cert": path("future_cert.pem"),
        "future_key": path("future_cert.key"),
        "lax_ca": path("lax_ca.pem"),
        "lax_cert": path("lax_cert.pem"),
        "lax_key": path("lax_cert.key"),
        "self_signed": path("self_signed.pem"),
        "self_signed_key": path("self_signed.key"),
    }


def server_context(certfile, keyfile):
    """Returns a server-side SSL context for a certificate made by :func:`make_certificates`."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile, keyfile)
    return context


# ------------------------------------------------------------------- reader test servers


def own_answer(path, head_only=False):
    """Returns the bytes of a 200 whose body is ``path``: the answer a request for ``path``
    must get, so that an answer read as another request's shows."""
    body = path.encode("latin-1")
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body)
    return head if head_only else head + body


class PathServer(RawServer):
    """An HTTP/1.1 keep-alive server on 127.0.0.1 that answers a request whose path is in
    ``script`` with exactly those bytes (closing the connection after them if the path is
    in ``closing``), and every other request with :func:`own_answer`. ``script`` and
    ``closing`` may change at any time. Use as a context manager.
    """

    def __init__(self, script=None, closing=(), tls=None):
        RawServer.__init__(self, self._answer, tls)
        self.script = dict(script or {})
        self.closing = set(closing)

    def _answer(self, sock, index):
        while True:
            request = self.read(sock)
            if request is None:
                return
            reply = self.script.get(request.path)
            if reply is None:
                reply = own_answer(request.path, head_only=request.method == "HEAD")
            sock.sendall(reply)
            if request.path in self.closing:
                return


class UnrulyServer(RawServer):
    """A keep-alive server that answers each request with :func:`own_answer`, but at
    random (``random.Random(seed)``) sends a whole extra response (``EVIL``) in the same
    write after the answer, resets the connection in the middle of the body, or closes the
    connection after the answer (a dropped idle socket). ``events`` counts what it did.
    """

    def __init__(self, seed):
        RawServer.__init__(self, self._answer)
        self._random = random.Random(seed)
        self.events = {"answer": 0, "stray": 0, "reset": 0, "drop": 0}

    def _answer(self, sock, index):
        while True:
            request = self.read(sock)
            if request is None:
                return
            with self._lock:
                event = self._random.choice(["answer"] * 5 + ["stray", "reset", "drop"])
                self.events[event] += 1
            answer = own_answer(request.path)
            if event == "stray":
                sock.sendall(answer + b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL")
            elif event == "reset":
                sock.sendall(answer[:-2])
                # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.close()
                return
            else:
                sock.sendall(answer)
                if event == "drop":
                    return
