"""A loopback stand-in for the Xanadu Cloud, for tests, the demo and the benchmark.

``StandIn`` serves, on 127.0.0.1 and an ephemeral port, what ``xcc.Connection`` and its
real callers (the original package's ``xcc.Device``, ``xcc.Job`` and ``xcc`` command line,
Strawberry Fields' ``RemoteEngine``) read: the token endpoint, ``/healthz``, ``/devices``
(a device, its specification and its certificate) and ``/jobs`` (create, list, get, cancel,
circuit, result). A job goes open, queued, then complete within ``job_seconds`` (or
failed, if its circuit names no device); its result is an ``.npz`` file of made-up photon
counts, shaped like the device's ``(shots, modes)`` but not physics. It records every
request it receives, so a test can check what reached the server and on which TCP
connection. Standard library only, CPython 3.6 to 3.13; ``xcc.py`` never imports it.

    with StandIn() as cloud:
        connection = xcc.Connection(refresh_token=REFRESH_TOKEN, host=cloud.host,
                                    port=cloud.port, tls=False)
        connection.ping()
        print([(r.method, r.path, r.status) for r in cloud.requests])
"""

import base64
import http.server
import io
import json
import os
import random
import re
import socket
import socketserver
import ssl
import sys
import threading
import time
import uuid
import zipfile
from datetime import datetime, timezone
from urllib.parse import parse_qs, urlsplit

__all__ = ["REFRESH_TOKEN", "Recorded", "StandIn", "make_jwt", "result_bytes"]

TOKEN_PATH = "/auth/realms/platform/protocol/openid-connect/token"


def _b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _segment(obj):
    return _b64url(json.dumps(obj, separators=(",", ":")).encode("utf-8"))


def make_jwt(exp, sub="user"):
    """Returns an unverifiable JWT ``header.payload.signature`` whose payload has ``exp``."""
    header = _segment({"alg": "HS256", "typ": "JWT"})
    payload = _segment({"sub": sub, "exp": int(exp), "iat": int(time.time())})
    return "{}.{}.{}".format(header, payload, _b64url(os.urandom(32)))


# A refresh token (an "API key") shaped like the offline tokens the real server issues.
REFRESH_TOKEN = "{}.{}.{}".format(
    _segment({"alg": "HS256", "typ": "JWT"}),
    _segment({"sub": "user", "typ": "Offline", "jti": "standin-refresh-token"}),
    _b64url(b"standin refresh token signature!"),
)

# The record of the API documentation's example, keys in its order (dicts keep insertion order).
_UPTIME = ["15:00:00+00:00", "22:59:59+00:00"]
X8_01 = {
    "expected_uptime": {
        day: list(_UPTIME) for day in ("monday", "tuesday", "thursday", "wednesday")
    },
    "created_at": "2021-01-27T15:15:25.801308Z",
    "target": "X8_01",
    "status": "online",
}
DEVICES = {"X8_01": X8_01}

# The X8's specification as Strawberry Fields reads it: the Blackbird template that a
# program is compiled to, and the values each of its parameters may take.
X8_LAYOUT = """name template_4x2_X8
version 1.0
target X8_01 (shots=1)

# for n spatial degrees, first n signal modes, then n idler modes, all phases zero
S2gate({squeezing_amplitude_0}, 0.0) | [0, 4]
S2gate({squeezing_amplitude_1}, 0.0) | [1, 5]
S2gate({squeezing_amplitude_2}, 0.0) | [2, 6]
S2gate({squeezing_amplitude_3}, 0.0) | [3, 7]

# standard 4x4 interferometer for the signal modes (the lower ones in frequency)
# even phase indices correspond to internal Mach-Zehnder interferometer phases
# odd phase indices correspond to external Mach-Zehnder interferometer phases
MZgate({phase_0}, {phase_1}) | [0, 1]
MZgate({phase_2}, {phase_3}) | [2, 3]
MZgate({phase_4}, {phase_5}) | [1, 2]
MZgate({phase_6}, {phase_7}) | [0, 1]
MZgate({phase_8}, {phase_9}) | [2, 3]
MZgate({phase_10}, {phase_11}) | [1, 2]

# duplicate the interferometer for the idler modes (the higher ones in frequency)
MZgate({phase_0}, {phase_1}) | [4, 5]
MZgate({phase_2}, {phase_3}) | [6, 7]
MZgate({phase_4}, {phase_5}) | [5, 6]
MZgate({phase_6}, {phase_7}) | [4, 5]
MZgate({phase_8}, {phase_9}) | [6, 7]
MZgate({phase_10}, {phase_11}) | [5, 6]

# add final dummy phases to allow mapping any unitary to this template (these do not
# affect the photon number measurement)
""" + "".join("Rgate({{final_phase_{0}}}) | [{0}]\n".format(mode) for mode in range(8)) + """
# measurement in Fock basis
MeasureFock() | [0, 1, 2, 3, 4, 5, 6, 7]
"""
_PHASE = [0, [0, 6.283185307179586]]  # 0, or anything from 0 to 2 pi
SPECIFICATIONS = {
    "X8_01": {
        "target": "X8_01",
        "layout": X8_LAYOUT,
        "modes": 8,
        "compiler": ["Xcov"],
        "gate_parameters": dict(
            [("squeezing_amplitude_{}".format(i), [0, 1]) for i in range(4)]
            + [("phase_{}".format(i), _PHASE) for i in range(12)]
            + [("final_phase_{}".format(i), _PHASE) for i in range(8)]
        ),
    }
}
CERTIFICATES = {
    "X8_01": {
        "target": "X8_01",
        "calibration_date": "2021-01-27T15:15:25.801308Z",
        "laser_wavelength_meters": 1.55e-06,
        "note": "made up by the stand-in: no device was calibrated",
    }
}
_MAX_SHOTS = 100000  # a result of 8 x 100,000 counts is 6.4 MB

_PERIOD = 251  # a prime, so a result chunk that lands at the wrong offset does not match
_BLOCK = bytes(range(_PERIOD)) * 261  # 65511 bytes, a whole number of periods


def result_bytes(size):
    """Returns the first ``size`` bytes of the body that ``GET /jobs/<id>/result`` serves."""
    return (_BLOCK * (size // len(_BLOCK) + 1))[:size]


class Recorded:
    """One request as the stand-in received it; ``status`` is the status it was answered."""

    def __init__(self, method, path, query, headers, body, connection):
        self.method = method
        self.path = path  # the raw path, without the query and not percent-decoded
        self.query = query  # name -> list of values
        self.headers = headers  # lower-cased name -> value
        self.body = body
        self.connection = connection  # id of the TCP connection (1, 2, ...)
        self.status = None

    def __repr__(self):
        return "<Recorded {} {} conn={} status={}>".format(
            self.method, self.path, self.connection, self.status
        )


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        # Clients that hang up or fail a TLS handshake are part of the tests; stay quiet
        # about those, but not about a bug in the stand-in itself.
        if not isinstance(sys.exc_info()[1], OSError):
            http.server.HTTPServer.handle_error(self, request, client_address)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # The head and the body go out in two writes: with Nagle's algorithm the body would wait
    # for the client's delayed ACK of the head, 40 ms on Linux, on every kept-alive request.
    disable_nagle_algorithm = True
    server_version = "StandIn/1.0"

    def setup(self):
        self.standin = self.server.standin
        self.record = None
        self.conn_id = self.standin._track(self.request, threading.current_thread())
        if isinstance(self.request, ssl.SSLSocket):
            self.request.do_handshake()
        http.server.BaseHTTPRequestHandler.setup(self)

    def finish(self):
        try:
            http.server.BaseHTTPRequestHandler.finish(self)
        finally:
            self.standin._untrack(self.request)

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        pass

    def send_response(self, code, message=None):
        if getattr(self, "record", None) is not None and self.record.status is None:
            self.record.status = code
        http.server.BaseHTTPRequestHandler.send_response(self, code, message)

    def _read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, status, body=b"", content_type="application/json"):
        if not isinstance(body, bytes):
            body = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _dispatch(self):
        split = urlsplit(self.path)
        headers = dict((name.lower(), value) for name, value in self.headers.items())
        self.record = Recorded(
            self.command,
            split.path,
            parse_qs(split.query, keep_blank_values=True),
            headers,
            self._read_body(),
            self.conn_id,
        )
        if self.standin._record(self.record):  # hang up without an answer
            self.close_connection = True
            return
        if self.standin.delay:
            self.standin._stopping.wait(self.standin.delay)
        if split.path == TOKEN_PATH and self.command == "POST":
            return self._token(self.record)
        auth = headers.get("authorization", "")
        if not (auth.startswith("Bearer ") and self.standin._valid(auth[len("Bearer ") :])):
            return self._send(401, {"detail": "Invalid or expired access token."})
        status, body = self.standin._route(self.command, split.path, self.record)
        if body is None:  # result_size bytes, streamed in blocks
            return self._send_result()
        if isinstance(body, bytes):
            return self._send(status, body, "application/octet-stream")
        self._send(status, body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch

    def _token(self, record):
        form = parse_qs(record.body.decode("utf-8", "replace"), keep_blank_values=True)
        if (
            form.get("grant_type") == ["refresh_token"]
            and form.get("client_id") == ["public"]
            and form.get("refresh_token") == [REFRESH_TOKEN]
        ):
            return self._send(200, {"access_token": self.standin._issue()})
        self._send(400, {"error": "invalid_grant", "error_description": "Invalid refresh token"})

    def _send_result(self):
        size = self.standin.result_size
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        if self.command == "HEAD":
            return
        view = memoryview(_BLOCK)
        while size > 0:
            piece = view[: min(size, len(_BLOCK))]
            self.wfile.write(piece)
            size -= len(piece)


def _validation_error(field, message):
    return 400, {
        "code": "validation-error",
        "detail": "Invalid request",
        "meta": {field: [message]},
    }


class StandIn:
    """A loopback Xanadu Cloud: ``with StandIn() as cloud:`` serves on ``cloud.url``.

    ``tls`` is an optional ``(certfile, keyfile)`` pair, to serve HTTPS instead of HTTP.
    """

    def __init__(self, tls=None, port=0):
        self.host = "127.0.0.1"
        self.port = port  # 0: a free port, chosen when the server starts
        self.url = None
        self.tls = tls
        self.requests = []
        self.connections = 0
        self.tokens_issued = 0
        self.result_size = None  # a size in bytes: results are that many bytes, not .npz
        self.job_seconds = 0.5  # how long a job takes from open to complete
        self.hang_up = 0  # how many of the next requests get no answer: the socket is closed
        self.delay = 0  # seconds to wait before answering each request (to test timeouts)
        self.jobs = {}  # id -> job, in creation order
        self._lock = threading.Lock()
        self._tokens = set()
        self._sockets = {}  # client socket -> handler thread
        self._server = None
        self._thread = None
        self._stopping = threading.Event()

    def __enter__(self):
        server = _Server((self.host, self.port), _Handler)
        server.standin = self
        if self.tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.tls)
            plain_get_request = server.get_request

            def get_request():
                # The handshake runs in the handler's thread, not in the accepting one.
                sock, address = plain_get_request()
                sock = context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
                return sock, address

            server.get_request = get_request
        self._server = server
        self.port = server.server_address[1]
        self.url = "{}://{}:{}".format("https" if self.tls else "http", self.host, self.port)
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,))
        self._thread.daemon = True
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        threads = self.close_connections()
        deadline = time.time() + 5
        for thread in threads:
            thread.join(max(0, deadline - time.time()))

    def revoke_tokens(self):
        """Makes every access token issued so far invalid: the next use of one gets 401."""
        with self._lock:
            self._tokens.clear()

    def close_connections(self):
        """Closes every open client connection, as a server closes idle keep-alive sockets."""
        with self._lock:
            sockets = list(self._sockets.items())
        for sock, _ in sockets:
            try:
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass
        return [thread for _, thread in sockets]

    # -- used by the handler -------------------------------------------------------------

    def _track(self, sock, thread):
        with self._lock:
            self.connections += 1
            self._sockets[sock] = thread
            return self.connections

    def _untrack(self, sock):
        with self._lock:
            self._sockets.pop(sock, None)

    def _record(self, record):
        with self._lock:
            self.requests.append(record)
            hang_up, self.hang_up = self.hang_up > 0, max(self.hang_up - 1, 0)
            return hang_up

    def _issue(self):
        token = make_jwt(time.time() + 3600)
        with self._lock:
            self._tokens.add(token)
            self.tokens_issued += 1
        return token

    def _valid(self, token):
        with self._lock:
            return token in self._tokens

    def _route(self, method, path, record):
        """Returns ``(status, JSON body)``, or ``(200, bytes)`` for a job result."""
        parts = path.strip("/").split("/")
        reading = method in ("GET", "HEAD")
        if reading and path == "/healthz":
            return 200, {}
        if reading and parts[0] == "devices" and len(parts) <= 3:
            if len(parts) == 1:
                data = list(DEVICES.values())
                return 200, {"data": data, "meta": {"count": len(data)}}
            if parts[1] not in DEVICES:
                return 404, {"detail": "Device not found."}
            if len(parts) == 2:
                return 200, DEVICES[parts[1]]
            extra = {"specifications": SPECIFICATIONS, "certificate": CERTIFICATES}
            if parts[2] in extra:
                return 200, extra[parts[2]][parts[1]]
        if parts[0] != "jobs" or len(parts) > 3:
            return 404, {"detail": "Not found."}
        if len(parts) == 1 and method == "POST":
            return self._create_job(record.body)
        if len(parts) == 1 and reading:
            return self._list_jobs(record.query)
        with self._lock:
            job = self.jobs.get(parts[1])
            if job is None:
                return 404, {"detail": "Job not found."}
            record_ = self._advance(job)
            if len(parts) == 2 and reading:
                return 200, record_
            if len(parts) == 2 and method == "PATCH":
                return self._cancel(job, record.body)
            if parts[2:] == ["circuit"] and reading:
                return 200, {"circuit": job["circuit"]}
            if parts[2:] == ["result"] and reading:
                if job["status"] != "complete":
                    return 404, {"detail": "Job result not found: the job is " + job["status"]}
                if self.result_size is not None:
                    return 200, None  # a body of result_size bytes, for tests of streaming
                return 200, _npz(job["samples"])
        return 404, {"detail": "Not found."}

    def _create_job(self, body):
        try:
            payload = json.loads(body.decode("utf-8"))
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            return _validation_error("_schema", "Invalid input type.")
        if "circuit" not in payload:
            return _validation_error("circuit", "Missing data for required field.")
        now = time.time()
        job = {
            "id": str(uuid.uuid4()),
            "name": payload.get("name"),
            "status": "open",
            "target": payload.get("target"),
            "language": payload.get("language"),
            "created_at": _timestamp(now),
            "started_at": None,
            "finished_at": None,
            "running_time": None,
            "meta": {},
            # Not part of the record:
            "circuit": payload["circuit"],
            "created": now,
        }
        with self._lock:
            self.jobs[job["id"]] = job
            return 201, self._advance(job)

    def _advance(self, job):
        """Moves ``job`` along its lifecycle as the time since it was made says; returns its
        record. The caller holds the lock."""
        elapsed = time.time() - job["created"]
        if job["status"] == "open" and elapsed >= self.job_seconds / 5:
            job["status"] = "queued"
        if job["status"] == "queued" and elapsed >= self.job_seconds:
            started = job["created"] + self.job_seconds / 5
            finished = job["created"] + self.job_seconds
            job.update(
                started_at=_timestamp(started),
                finished_at=_timestamp(finished),
                running_time=round(finished - started, 6),
            )
            circuit = job["circuit"] if isinstance(job["circuit"], str) else ""
            found = re.search(r"^\s*target\s+(\w+)\s*(?:\(([^)]*)\))?", circuit, re.MULTILINE)
            if found is None or found.group(1) not in SPECIFICATIONS:
                job["status"] = "failed"
                job["meta"] = {
                    "error_code": "invalid-circuit",
                    "error_detail": "The circuit has no 'target' line naming a device"
                    " ({})".format(", ".join(SPECIFICATIONS)),
                }
            else:
                shots = re.search(r"\bshots\s*=\s*(\d+)", found.group(2) or "")
                count = min(int(shots.group(1)) if shots else 1, _MAX_SHOTS)
                modes = SPECIFICATIONS[found.group(1)]["modes"]
                rng = random.Random(job["id"])  # the same samples at every read
                job["samples"] = [[rng.choice((0, 0, 0, 1, 1, 2)) for _ in range(modes)]
                                  for _ in range(count)]  # fmt: skip
                job["status"] = "complete"
        return {key: value for key, value in job.items() if key in _JOB_FIELDS}

    def _cancel(self, job, body):
        """Cancels ``job`` if the PATCH ``body`` asks for it; the caller holds the lock."""
        try:
            status = json.loads(body.decode("utf-8")).get("status")
        except (ValueError, AttributeError):
            status = None
        if status != "cancelled":
            return _validation_error("status", "Must be one of: cancelled.")
        if job["status"] in ("open", "queued"):
            job.update(status="cancelled", finished_at=_timestamp(time.time()))
        return 200, self._advance(job)

    def _list_jobs(self, query):
        try:
            size = int(query.get("size", ["5"])[-1])
        except ValueError:
            return _validation_error("size", "Not a valid integer.")
        ids = set(query.get("id", []))
        statuses = set(query.get("status", []))
        with self._lock:
            jobs = [self._advance(job) for job in self.jobs.values()]
        jobs = [
            job
            for job in reversed(jobs)  # the newest first, as the Xanadu Cloud lists them
            if (not ids or job["id"] in ids) and (not statuses or job["status"] in statuses)
        ]
        return 200, {"data": jobs[: max(size, 0)], "meta": {"count": len(jobs)}}


_JOB_FIELDS = ("id", "name", "status", "target", "language", "created_at", "started_at",
               "finished_at", "running_time", "meta")  # fmt: skip


def _timestamp(seconds):
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _npz(samples):
    """Returns an ``.npz`` file (what ``numpy.savez`` writes) whose ``arr_0`` is ``samples``,
    a list of rows of integers, as 64-bit integers: the ``.npy`` format, version 1.0, is a
    magic string, a header that is a Python dict literal padded to 64 bytes, then the data."""
    rows, columns = len(samples), len(samples[0]) if samples else 0
    header = "{{'descr': '<i8', 'fortran_order': False, 'shape': ({}, {}), }}".format(rows, columns)
    header += " " * (-(len(header) + 11) % 64) + "\n"
    data = b"".join(int(value).to_bytes(8, "little", signed=True) for row in samples for value in row)
    npy = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode("latin-1") + data
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("arr_0.npy", npy)
    return buffer.getvalue()


def main(argv=None):
    """``python offline/standin.py [--port PORT]``: serves until Ctrl-C, after printing the
    settings that point ``xcc.py`` (and the original client) at the stand-in."""
    import argparse
    import signal

    parser = argparse.ArgumentParser(
        prog="standin.py",
        description="A loopback stand-in for the Xanadu Cloud, on 127.0.0.1 over HTTP: its"
        " devices, specifications, certificates and jobs are what the original client and"
        " Strawberry Fields read, but a job's samples are made up (shaped like the X8's,"
        " not physics).",
    )
    parser.add_argument("--port", type=int, default=0, help="the port (default: a free one)")
    args = parser.parse_args(argv)
    # Ctrl-C stops it even where it starts with SIGINT ignored (in the background of a
    # script), and ``kill`` stops it the same way: the server closes, nothing is printed.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    cloud = StandIn(port=args.port)
    try:
        cloud.__enter__()
    except OSError as exc:  # such as a port in use: one line, no traceback
        parser.exit(1, "standin.py: error: cannot serve on port {}: {}\n".format(args.port, exc))
    try:
        print("The Xanadu Cloud stand-in serves on {} until Ctrl-C.".format(cloud.url))
        print("Paste these lines into another shell, then run: python xcc.py ping\n")
        for name, value in [
            ("XANADU_CLOUD_HOST", cloud.host),
            ("XANADU_CLOUD_PORT", cloud.port),
            ("XANADU_CLOUD_TLS", "false"),
            ("XANADU_CLOUD_REFRESH_TOKEN", REFRESH_TOKEN),
        ]:
            print("export {}={}".format(name, value))
        sys.stdout.flush()
        threading.Event().wait()  # until Ctrl-C
    except KeyboardInterrupt:
        pass
    finally:
        cloud.__exit__(None, None, None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
