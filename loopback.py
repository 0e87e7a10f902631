"""Loopback servers for the tests of xcc.py: real sockets on 127.0.0.1, no mocks.

- :class:`ScriptedServer`: an HTTP/1.1 keep-alive server (optionally TLS) that answers with
  a function of the request and records every request and TCP connection.
- :class:`RawServer`: a TCP server that hands each connection to a function, for servers
  that misbehave on purpose (cut bodies, garbage, silence, dropped sockets).
- :class:`Proxy`: an HTTP proxy with CONNECT tunnels and absolute-form requests, optional
  Basic credentials, recording what it sees.
- :func:`make_certificates`: a CA and server certificates made with the ``openssl`` CLI.

Standard library only, CPython 3.6 to 3.13; ``xcc.py`` never imports this module.
"""

import base64
import http.server
import os
import select
import socket
import socketserver
import ssl
import subprocess
import threading
from urllib.parse import parse_qs, urlsplit


class Recorded:
    """One request as the server received it."""

    def __init__(self, method, target, headers, body, connection):
        self.method = method
        self.target = target
        parts = urlsplit(target)
        self.path = parts.path
        self.query = parse_qs(parts.query, keep_blank_values=True)
        self.raw_headers = headers  # [(name, value)] in the order received
        self.headers = {name.lower(): value for name, value in headers}
        self.body = body
        self.connection = connection

    def __repr__(self):
        return "<Recorded {} {} on connection {}>".format(self.method, self.target, self.connection)


class Reply:
    """What a :class:`ScriptedServer` handler returns: a status, headers and a body."""

    def __init__(self, status=200, body=b"", headers=(), reason=None):
        self.status = status
        self.body = body if isinstance(body, bytes) else body.encode("utf-8")
        self.headers = list(headers.items()) if hasattr(headers, "items") else list(headers)
        self.reason = reason


def json_reply(status, obj, headers=()):
    """Returns a :class:`Reply` with ``obj`` serialised as JSON."""
    import json

    headers = list(headers.items()) if hasattr(headers, "items") else list(headers)
    return Reply(status, json.dumps(obj), [("Content-Type", "application/json")] + headers)


class _ThreadingServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64  # socketserver's 5 makes a burst of clients wait for SYN resends

    def handle_error(self, request, client_address):
        pass  # a client that hung up or refused our certificate is part of the test


class ScriptedServer:
    """A threaded HTTP/1.1 server on 127.0.0.1 that answers each request with
    ``handler(recorded) -> Reply`` and records requests and TCP connections.

    Use as a context manager. ``tls`` is an ``ssl.SSLContext`` for HTTPS.
    """

    def __init__(self, handler=None, tls=None):
        self.handler = handler or (lambda request: Reply(200, b"{}"))
        self.tls = tls
        self.requests = []
        self.connections = 0
        self._lock = threading.Lock()
        self._sockets = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # head and body go out in two writes

            def log_message(self, *args):
                pass

            def setup(self):
                if owner.tls is not None:
                    self.request = owner.tls.wrap_socket(self.request, server_side=True)
                with owner._lock:
                    owner.connections += 1
                    self.connection_id = owner.connections
                    owner._sockets.append(self.request)
                http.server.BaseHTTPRequestHandler.setup(self)

            def handle_one_request(self):
                self.raw_requestline = self.rfile.readline(65537)
                if not self.raw_requestline or not self.parse_request():
                    self.close_connection = True
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                recorded = Recorded(
                    self.command, self.path, list(self.headers.items()), body, self.connection_id
                )
                with owner._lock:
                    owner.requests.append(recorded)
                reply = owner.handler(recorded)
                if isinstance(reply, bytes):  # a raw response, written as it is
                    self.wfile.write(reply)
                    self.wfile.flush()
                    return
                self.send_response_only(reply.status, reply.reason)
                names = {name.lower() for name, _ in reply.headers}
                for name, value in reply.headers:
                    self.send_header(name, value)
                if "content-length" not in names and "transfer-encoding" not in names:
                    self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(reply.body)
                self.wfile.flush()
                if "close" in dict((n.lower(), v.lower()) for n, v in reply.headers).get(
                    "connection", ""
                ):
                    self.close_connection = True

        self._server = _ThreadingServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self.host = "127.0.0.1"
        self.url = "{}://127.0.0.1:{}".format("https" if tls else "http", self.port)

    def __enter__(self):
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc_info):
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            for sock in self._sockets:
                _shut(sock)

    def drop_idle_connections(self):
        """Closes every connection the server holds, as a server whose keep-alive expired."""
        with self._lock:
            for sock in self._sockets:
                _shut(sock)


def _shut(sock):
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


def read_request(sock):
    """Reads one request (head and ``Content-Length`` body) from ``sock``.

    Returns:
        tuple: ``(head, body)`` as bytes, or ``None`` if the client closed first
    """
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head, body


class RawServer:
    """A TCP server on 127.0.0.1 that hands each accepted socket to ``serve(sock, index)``
    in a thread (``index`` counts connections from 1), then closes it.

    ``requests`` collects the request heads that :func:`read_request` read through
    :meth:`read` (use it in ``serve``), so a test can count what reached the server.
    """

    def __init__(self, serve, tls=None):
        self.serve = serve
        self.tls = tls
        self.connections = 0
        self.requests = []
        self._lock = threading.Lock()
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self.host = "127.0.0.1"
        self.url = "{}://127.0.0.1:{}".format("https" if tls else "http", self.port)
        self._closed = False
        self._sockets = []

    def read(self, sock):
        """Reads one request like :func:`read_request` and records its head."""
        request = read_request(sock)
        if request is not None:
            with self._lock:
                self.requests.append(request[0])
        return request

    def __enter__(self):
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc_info):
        self._closed = True
        _shut(self._listener)
        with self._lock:
            for sock in self._sockets:
                _shut(sock)

    def _accept(self):
        while not self._closed:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                index = self.connections
                self._sockets.append(sock)
            threading.Thread(target=self._run, args=(sock, index), daemon=True).start()

    def _run(self, sock, index):
        try:
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_side=True)
            self.serve(sock, index)
        except OSError:
            pass
        finally:
            _shut(sock)


class Proxy:
    """An HTTP proxy on 127.0.0.1: ``CONNECT`` tunnels and absolute-form requests.

    Args:
        credentials (tuple, optional): ``(user, password)`` it requires, else it answers 407
        refuse (int, optional): a status with which to refuse every CONNECT

    ``seen`` records ``(request line, {lower-cased header: value})`` of each request the
    proxy itself read (the CONNECTs and the absolute-form requests, not what is tunnelled).
    """

    def __init__(self, credentials=None, refuse=None):
        self.credentials = credentials
        self.refuse = refuse
        self.seen = []
        self._server = RawServer(self._serve)
        self.port = self._server.port
        self.host = "127.0.0.1"

    def url(self, user=None, password=None):
        """Returns the proxy URL, with ``user:password@`` if given (percent-encode them)."""
        auth = "{}:{}@".format(user, password) if user is not None else ""
        return "http://{}127.0.0.1:{}".format(auth, self.port)

    def __enter__(self):
        self._server.__enter__()
        return self

    def __exit__(self, *exc_info):
        self._server.__exit__(*exc_info)

    def _authorized(self, headers):
        if self.credentials is None:
            return True
        expected = "Basic " + base64.b64encode(
            "{}:{}".format(*self.credentials).encode("utf-8")
        ).decode("ascii")
        return headers.get("proxy-authorization") == expected

    def _serve(self, client, index):
        while True:
            request = read_request(client)
            if request is None:
                return
            head, body = request
            lines = head.decode("latin-1").split("\r\n")
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            self.seen.append((lines[0], headers))
            method, target, _ = lines[0].split(" ", 2)
            if not self._authorized(headers):
                client.sendall(
                    b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                    b'Proxy-Authenticate: Basic realm="test"\r\nContent-Length: 0\r\n\r\n'
                )
                continue
            if method == "CONNECT":
                if self.refuse:
                    client.sendall(
                        "HTTP/1.1 {} Refused\r\nContent-Length: 0\r\n\r\n".format(
                            self.refuse
                        ).encode()
                    )
                    return
                host, _, port = target.rpartition(":")
                upstream = socket.create_connection((host.strip("[]"), int(port)))
                client.sendall(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                _relay(client, upstream)
                return
            self._forward(client, method, target, lines, body)

    def _forward(self, client, method, target, lines, body):
        parts = urlsplit(target)
        upstream = socket.create_connection((parts.hostname, parts.port or 80))
        try:
            origin_form = (parts.path or "/") + ("?" + parts.query if parts.query else "")
            kept = [
                line
                for line in lines[1:]
                if line.split(":", 1)[0].strip().lower()
                not in ("proxy-authorization", "connection", "keep-alive")
            ]
            head = "\r\n".join(
                ["{} {} HTTP/1.1".format(method, origin_form)] + kept + ["Connection: close"]
            )
            upstream.sendall(head.encode("latin-1") + b"\r\n\r\n" + body)
            response = b""
            while True:
                chunk = upstream.recv(65536)
                if not chunk:
                    break
                response += chunk
        finally:
            upstream.close()
        head, _, rest = response.partition(b"\r\n\r\n")
        kept = [
            line for line in head.split(b"\r\n") if not line.lower().startswith(b"connection:")
        ]
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


def make_certificates(directory):
    """Makes a test CA and certificates for ``localhost``/``127.0.0.1`` with ``openssl``.

    Returns:
        dict: paths: ``ca`` (a CA whose basicConstraints is critical), ``cert``/``key``
        (signed by it), ``lax_ca`` (a CA whose basicConstraints is *not* critical, like some
        corporate inspection CAs), ``lax_cert``/``lax_key`` (signed by that one), and
        ``self_signed``/``self_signed_key`` (trusted by nobody)

    Raises:
        OSError: if ``openssl`` is not installed
    """

    def path(name):
        return os.path.join(directory, name)

    def openssl(*args):
        subprocess.run(
            ("openssl",) + args, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )

    key_options = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    with open(path("leaf.cnf"), "w") as file:
        file.write(
            "basicConstraints=CA:FALSE\n"
            "keyUsage=critical,digitalSignature\n"
            "extendedKeyUsage=serverAuth\n"
            "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
            "subjectKeyIdentifier=hash\n"
            "authorityKeyIdentifier=keyid\n"
        )
    for name, constraints in (("ca", "critical,CA:TRUE"), ("lax_ca", "CA:TRUE")):
        with open(path(name + ".cnf"), "w") as file:
            file.write(
                "[req]\ndistinguished_name=dn\nx509_extensions=ext\n[dn]\n[ext]\n"
                "basicConstraints={}\nkeyUsage=critical,keyCertSign,cRLSign\n"
                "subjectKeyIdentifier=hash\n".format(constraints)
            )
        openssl("req", "-x509", *key_options, "-keyout", path(name + ".key"), "-out",
                path(name + ".pem"), "-days", "30", "-subj", "/CN=xcc.py test " + name,
                "-config", path(name + ".cnf"))  # fmt: skip
    for leaf, ca in (("cert", "ca"), ("lax_cert", "lax_ca")):
        openssl("req", *key_options, "-keyout", path(leaf + ".key"), "-out", path(leaf + ".csr"),
                "-subj", "/CN=localhost")  # fmt: skip
        openssl("x509", "-req", "-in", path(leaf + ".csr"), "-CA", path(ca + ".pem"), "-CAkey",
                path(ca + ".key"), "-CAcreateserial", "-out", path(leaf + ".pem"), "-days", "30",
                "-extfile", path("leaf.cnf"))  # fmt: skip
    openssl("req", "-x509", *key_options, "-keyout", path("self_signed.key"), "-out",
            path("self_signed.pem"), "-days", "30", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1")  # fmt: skip
    return {
        "ca": path("ca.pem"),
        "cert": path("cert.pem"),
        "key": path("cert.key"),
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
