"""Tests of xcc.py over real sockets, against loopback servers that the tests start.

Nothing here mocks ``http.client``, ``urllib``, ``socket`` or xcc's internals: every test
sends real bytes to a server of :mod:`loopback` (or the Xanadu Cloud stand-in of
:mod:`standin`, or a real tinyproxy) and asserts what a user would observe: what reached
the server, what came back, what was raised. A few tables call a small pure helper of xcc
directly. The classes follow the sections of xcc.py (the public surface, then the internals
in the order a request flows through them); those that cross every section (secrets,
logging, threads, randomised inputs, the original callers) and the command line come
last. Run with ``python -m pytest``.
"""

import ast
import base64
import contextlib
import decimal
import enum
import gc
import gzip
import hashlib
import importlib.util
import http.client
import inspect
import io
import json
import logging
import math
import os
import random
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import traceback
import urllib.request
import warnings
import zipfile
import zlib
from urllib.parse import parse_qsl, quote_plus, unquote, urlsplit

import pytest

import xcc

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "offline"))  # the test servers and the stand-in

import standin  # noqa: E402
from loopback import (  # noqa: E402
    PathServer,
    Proxy,
    RawServer,
    Reply,
    ScriptedServer,
    Tinyproxy,
    UnrulyServer,
    blackhole,
    closed_port,
    json_reply,
    make_certificates,
    own_answer,
    server_context,
)

# ------------------------------------------------------------------------------- helpers


def make_jwt(exp, subject="user"):
    """Returns an unsigned JWT whose ``exp`` claim is ``exp`` (Unix seconds)."""

    def segment(obj):
        raw = json.dumps(obj).encode("utf-8")
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    return ".".join([segment({"alg": "none"}), segment({"sub": subject, "exp": exp}), "sig"])


REFRESH_TOKEN = make_jwt(int(time.time()) + 10 * 365 * 86400, "refresh")
ACCESS_TOKEN = make_jwt(int(time.time()) + 3600, "access")
TOKEN_PATH = "/auth/realms/platform/protocol/openid-connect/token"
MISSING_TOKEN_MESSAGE = (
    "A refresh token (e.g., Xanadu Cloud API key) or an access token must be provided to"
    " connect to the Xanadu Cloud."
)


def connect(server, **kwargs):
    """Returns a :class:`xcc.Connection` to a loopback server (tokens that look valid)."""
    settings = {
        "refresh_token": REFRESH_TOKEN,
        "access_token": ACCESS_TOKEN,
        "host": server.host,
        "port": server.port,
        "tls": server.url.startswith("https"),
    }
    settings.update(kwargs)
    return xcc.Connection(**settings)


class Cloud:
    """A handler that behaves like the Xanadu Cloud's authentication: the token endpoint
    issues access tokens for :data:`REFRESH_TOKEN`; other paths need a current one (401
    otherwise) and are answered by ``routes[path](request)`` or 200 ``{"path": ...}``."""

    def __init__(self, valid=(ACCESS_TOKEN,), routes=None):
        self.valid = set(valid)
        self.routes = routes or {}
        self.issued = []

    def __call__(self, request):
        if request.path == TOKEN_PATH:
            form = dict(pair.split("=", 1) for pair in request.body.decode().split("&"))
            if form.get("refresh_token") != REFRESH_TOKEN:
                return json_reply(400, {"error": "invalid_grant"})
            token = make_jwt(int(time.time()) + 3600, f"access-{len(self.issued)}")
            self.issued.append(token)
            self.valid = {token}
            return json_reply(200, {"access_token": token})
        if request.headers.get("authorization", "")[len("Bearer ") :] not in self.valid:
            return json_reply(401, {"detail": "Invalid or expired access token."})
        route = self.routes.get(request.path)
        return route(request) if route else json_reply(200, {"path": request.path})


def raw_head(status="200 OK", headers=()):
    """Returns the bytes of a response head: a status line and ``headers`` (pairs)."""
    lines = ["HTTP/1.1 " + status] + [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def raw_response(body, status="200 OK", headers=()):
    """Returns a whole response with a ``Content-Length`` body."""
    return raw_head(status, list(headers) + [("Content-Length", len(body))]) + body


def wait_for_close(sock):
    """Blocks until the peer of ``sock`` closes the connection (EOF or reset)."""
    try:
        while sock.recv(65536):
            pass
    except OSError:
        pass


def exit_code_of_child(body):
    """Forks; the child runs ``body()`` and exits with 0 if it returned true (3 if not, 2 on
    an exception). Returns the child's exit code. A child that waits for a lock that another
    of the parent's threads held at the fork would wait forever: after 3 s SIGALRM ends it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads, 3.12+
        pid = os.fork()
    if pid == 0:
        code = 1
        try:
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
            signal.alarm(3)
            code = 0 if body() else 3
        except BaseException:  # noqa: BLE001 (the exit code reports it)
            code = 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1


def wait_until(predicate, timeout=5.0):
    """Returns whether ``predicate()`` became true within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def fault_server(servers, reply, hold=False, tls=None):
    """Returns a :class:`loopback.RawServer` (HTTPS with a server-side SSL context ``tls``)
    that reads one request per connection, then writes ``reply`` (bytes, or a function of
    the socket) and closes the connection (over TLS, without a close_notify alert); with
    ``hold``, it waits for the client to close first."""

    def serve(sock, index):
        if server.read(sock) is None:
            return
        if callable(reply):
            reply(sock)
        else:
            sock.sendall(reply)
        if hold:
            wait_for_close(sock)

    server = servers.raw(serve, tls)
    return server


def assert_names_url(exc, cls, url):
    """Asserts that ``exc`` is exactly ``cls`` (an xcc exception, not one leaked from
    http.client or socket) and that its message names ``url``."""
    assert type(exc) is cls, f"{exc!r} is not {cls.__name__}"
    assert url in str(exc)


def body_error(connection, path, stream, chunk_size):
    """Returns the :class:`xcc.RequestException` that a GET of ``path`` raised, from
    ``request()`` or while its body was read in pieces of ``chunk_size``."""
    with pytest.raises(xcc.RequestException) as info:
        response = connection.request("GET", path, stream=stream)
        b"".join(response.iter_content(chunk_size))
    return info.value


def refused_before_sending(server, exception, call):
    """Runs ``call``, which must raise ``exception`` without opening a socket to ``server``;
    returns the exception."""
    with pytest.raises(exception) as info:
        call()
    assert server.settled_connections() == 0
    assert server.requests == []
    return info.value


def assert_not_leaked(text, *secrets):
    """Asserts that none of ``secrets`` appears in ``text``."""
    for secret in secrets:
        assert secret not in text


def run_python(args, env=None, timeout=30):
    """Runs this Python with ``args`` in the repository, with ``env`` (by default the test's
    environment); returns ``(exit code, stdout, stderr)`` as text."""
    completed = subprocess.run(
        [sys.executable] + list(args),
        cwd=HERE,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        timeout=timeout,
        check=False,
    )
    return (
        completed.returncode,
        completed.stdout.decode("utf-8", "replace"),
        completed.stderr.decode("utf-8", "replace"),
    )


# ------------------------------------------------------------------------------ fixtures

# Variables of the machine that would change where requests go or what they trust.
CLEARED_VARIABLES = (
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUEST_METHOD",
    "XDG_CONFIG_HOME",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    """Runs every test without the machine's CA-bundle, proxy and Xanadu Cloud variables,
    and with an empty home directory (no ``.env`` settings, no ``.netrc``)."""
    for name in list(os.environ):
        upper = name.upper()
        if (
            upper in CLEARED_VARIABLES
            or upper.endswith("_PROXY")
            or upper.startswith("XANADU_CLOUD_")
        ):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("USERPROFILE", str(home))
    return home


class Servers:
    """Starts loopback servers for one test and stops them after it, closing the client's
    idle sockets to them first so that no server thread outlives the test."""

    def __init__(self):
        self._stack = contextlib.ExitStack()
        self._origins = []

    def http(self, handler=None, tls=None):
        """Returns a running :class:`loopback.ScriptedServer`."""
        return self._origin(ScriptedServer(handler, tls))

    def raw(self, serve, tls=None):
        """Returns a running :class:`loopback.RawServer`."""
        return self._origin(RawServer(serve, tls))

    def paths(self, script, closing=(), tls=None):
        """Returns a running :class:`loopback.PathServer`."""
        return self._origin(PathServer(script, closing, tls))

    def unruly(self, seed):
        """Returns a running :class:`loopback.UnrulyServer`."""
        return self._origin(UnrulyServer(seed))

    def proxy(self, credentials=None, refuse=None, pass_credentials=False):
        """Returns a running :class:`loopback.Proxy`."""
        return self._stack.enter_context(Proxy(credentials, refuse, pass_credentials))

    def tinyproxy(self, connect_port):
        """Returns a running :class:`loopback.Tinyproxy`, or skips the test without one."""
        if not shutil.which("tinyproxy"):
            pytest.skip("tinyproxy is not installed")
        return self._stack.enter_context(Tinyproxy(connect_port))

    def _origin(self, server):
        self._stack.enter_context(server)
        self._origins.append(server)
        return server

    def close(self):
        for server in self._origins:
            connect(server).close()
        self._stack.close()


@pytest.fixture
def servers():
    """A factory of loopback servers: ``servers.http(handler)``, ``servers.raw(serve)``..."""
    started = Servers()
    yield started
    started.close()


@pytest.fixture
def server(servers):
    """A scripted HTTP server; set ``server.handler`` to choose its answers (200 ``{}``)."""
    return servers.http()


@pytest.fixture(scope="session")
def certificates(tmp_path_factory):
    """Paths of a test CA and certificates (see :func:`loopback.make_certificates`)."""
    try:
        return make_certificates(str(tmp_path_factory.mktemp("certificates")))
    except OSError as exc:  # no openssl binary
        pytest.skip(f"cannot make test certificates: {exc}")


@pytest.fixture(scope="session")
def tls_context(certificates):
    """A server-side SSL context with the test CA's certificate for 127.0.0.1."""
    return server_context(certificates["cert"], certificates["key"])


@pytest.fixture
def tls_server(servers, tls_context):
    """A scripted HTTPS server whose certificate the test CA signed (``certificates["ca"]``)."""
    return servers.http(tls=tls_context)


# ---------------------------------------------------------------------------- Connection


class TestConnection:
    """The seed's members: constructor, properties, url(), ping(), repr."""

    def test_constructor_without_tokens_raises_the_original_message(self):
        with pytest.raises(ValueError) as info:
            xcc.Connection()
        assert str(info.value) == MISSING_TOKEN_MESSAGE

    def test_defaults_are_the_seeds(self):
        connection = xcc.Connection(refresh_token=REFRESH_TOKEN)
        assert connection.refresh_token == REFRESH_TOKEN
        assert connection.access_token is None
        assert connection.host == "platform.strawberryfields.ai"
        assert connection.port == 443
        assert connection.tls is True
        assert connection.scheme == "https"
        assert connection.api_version == "0.4.0"
        assert connection.user_agent == f"XCC/{xcc.__version__} (API)"

    def test_properties_reflect_the_arguments(self):
        connection = xcc.Connection(
            access_token=ACCESS_TOKEN, host="example.com", port=8080, tls=False
        )
        assert (connection.access_token, connection.host, connection.port) == (
            ACCESS_TOKEN,
            "example.com",
            8080,
        )
        assert (connection.tls, connection.scheme) == (False, "http")

    @pytest.mark.parametrize(
        "name", ["access_token", "refresh_token", "host", "port", "tls", "scheme", "headers"]
    )
    def test_properties_are_read_only(self, name):
        connection = xcc.Connection(refresh_token=REFRESH_TOKEN)
        with pytest.raises(AttributeError):
            setattr(connection, name, "x")

    def test_headers_follow_the_original_formula(self):
        connection = xcc.Connection(
            access_token=ACCESS_TOKEN,
            headers={"Accept-Version": "1.2.3", "User-Agent": "me/1", "X-Extra": "y"},
        )
        assert connection.api_version == "1.2.3"
        assert connection.user_agent == "me/1"
        assert connection.headers == {
            "Accept-Version": "1.2.3",
            "Authorization": f"Bearer {ACCESS_TOKEN}",
            "User-Agent": "me/1",
            "X-Extra": "y",
        }
        connection.headers["X-Extra"] = "changed"
        assert connection.headers["X-Extra"] == "y"  # a new dict each time

    @pytest.mark.parametrize(
        "path, url",
        [
            ("", "https://example.com:443/"),
            ("/jobs", "https://example.com:443/jobs"),
            ("jobs", "https://example.com:443/jobs"),
            ("//evil.example/x", "https://example.com:443/evil.example/x"),
            ("/devices/X8_01", "https://example.com:443/devices/X8_01"),
        ],
    )
    def test_url_joins_the_path_and_never_changes_the_host(self, path, url):
        assert xcc.Connection(refresh_token=REFRESH_TOKEN, host="example.com").url(path) == url

    def test_url_brackets_an_ipv6_host(self):
        connection = xcc.Connection(refresh_token=REFRESH_TOKEN, host="::1", port=8000, tls=False)
        assert connection.url("x") == "http://[::1]:8000/x"

    @pytest.mark.parametrize(
        "kwargs, error",
        [
            ({"host": ""}, ValueError),
            ({"host": "a b"}, ValueError),
            ({"host": "example.com/x"}, ValueError),
            ({"host": "example.com:8080"}, ValueError),
            ({"host": "user@example.com"}, ValueError),
            ({"host": None}, TypeError),
            ({"port": 0}, ValueError),
            ({"port": 65536}, ValueError),
            ({"port": "44 3"}, TypeError),
            ({"port": "0"}, ValueError),
            ({"port": "٤٤٣"}, TypeError),  # digits, but not ASCII ones
            ({"port": 443.0}, TypeError),
            ({"port": True}, TypeError),
            ({"tls": "yes"}, TypeError),
            ({"tls": 2}, TypeError),
            ({"tls": 1.0}, TypeError),
            ({"headers": {"X": "a\r\nb"}}, ValueError),
            ({"headers": ["X"]}, TypeError),
        ],
    )
    def test_constructor_refuses_invalid_arguments(self, kwargs, error):
        with pytest.raises(error):
            xcc.Connection(refresh_token=REFRESH_TOKEN, **kwargs)

    def test_repr_names_which_tokens_are_set_and_the_url_but_no_token(self):
        connection = xcc.Connection(refresh_token=REFRESH_TOKEN, host="example.com")
        text = repr(connection)
        assert text == (
            "<Connection: refresh_token=<set>, access_token=None, url=https://example.com:443/>"
        )
        both = repr(xcc.Connection(refresh_token=REFRESH_TOKEN, access_token=ACCESS_TOKEN))
        assert REFRESH_TOKEN not in both and ACCESS_TOKEN not in both
        assert "access_token=<set>" in both

    def test_ping_gets_healthz(self, server):
        response = connect(server).ping()
        assert isinstance(response, xcc.Response)
        assert response.status_code == 200
        assert [(r.method, r.path) for r in server.requests] == [("GET", "/healthz")]

    def test_ping_raises_http_error_when_the_cloud_is_down(self, server):
        server.handler = lambda request: Reply(503, b"down", reason="Service Unavailable")
        with pytest.raises(xcc.HTTPError) as info:
            connect(server).ping()
        assert str(info.value) == (
            f"503 Server Error: Service Unavailable for url: {server.url}/healthz"
        )
        assert info.value.response.status_code == 503


class TestRequest:
    """What request() puts on the wire and how it handles tokens and errors."""

    def test_sends_the_connection_headers_and_upper_cases_the_method(self, server):
        connect(server).request("get", "/devices")
        request = server.requests[0]
        assert request.method == "GET"
        assert request.headers["authorization"] == f"Bearer {ACCESS_TOKEN}"
        assert request.headers["accept-version"] == "0.4.0"
        assert request.headers["user-agent"] == f"XCC/{xcc.__version__} (API)"
        assert request.headers["accept-encoding"] == "gzip, deflate"
        assert request.headers["host"] == f"127.0.0.1:{server.port}"
        assert "content-length" not in request.headers

    def test_request_headers_merge_case_insensitively(self, server):
        connection = connect(server, headers={"X-Team": "a"})
        connection.request(
            "GET", "/", headers={"user-agent": "script/2", "x-team": "b", "Accept-Encoding": None}
        )
        names = [name.lower() for name, _ in server.requests[0].raw_headers]
        assert names.count("user-agent") == 1 and names.count("x-team") == 1
        assert server.requests[0].headers["user-agent"] == "script/2"
        assert server.requests[0].headers["x-team"] == "b"
        assert "accept-encoding" not in server.requests[0].headers

    def test_a_missing_access_token_is_fetched_before_sending(self, server):
        cloud = server.handler = Cloud()
        connection = connect(server, access_token=None)
        assert connection.request("GET", "/devices").json() == {"path": "/devices"}
        token_request, request = server.requests
        assert (token_request.method, token_request.path) == ("POST", TOKEN_PATH)
        assert token_request.headers["content-type"] == "application/x-www-form-urlencoded"
        assert "authorization" not in token_request.headers
        assert dict(pair.split("=", 1) for pair in token_request.body.decode().split("&")) == {
            "grant_type": "refresh_token",
            "refresh_token": REFRESH_TOKEN,
            "client_id": "public",
        }
        assert request.headers["authorization"] == "Bearer " + cloud.issued[0]
        assert connection.access_token == cloud.issued[0]

    def test_an_expired_jwt_is_refreshed_before_sending(self, server):
        expired = make_jwt(int(time.time()) - 60)
        server.handler = Cloud(valid=[expired])  # the server would still take it
        connect(server, access_token=expired).request("GET", "/jobs")
        assert [r.path for r in server.requests] == [TOKEN_PATH, "/jobs"]

    def test_a_fetched_token_that_looks_expired_here_is_used_without_fetching_again(self, server):
        # This machine's clock runs ahead of the server's: the token it issues looks expired.
        issued = make_jwt(int(time.time()) - 60, "behind")
        server.handler = lambda request: json_reply(
            200, {"access_token": issued} if request.path == TOKEN_PATH else {}
        )
        connection = connect(server, access_token=None)
        assert connection.request("GET", "/a").ok
        assert connection.request("GET", "/b").ok
        assert [r.path for r in server.requests] == [TOKEN_PATH, "/a", "/b"]
        assert server.requests[2].headers["authorization"] == "Bearer " + issued

    def test_a_token_without_expiry_is_sent_as_it_is(self, server):
        server.handler = Cloud(valid=["opaque-token"])
        connect(server, access_token="opaque-token").request("GET", "/jobs")
        assert [r.path for r in server.requests] == ["/jobs"]

    def test_retry_after_401_keeps_method_target_body_and_request_headers(self, server):
        cloud = server.handler = Cloud(valid=[])
        response = connect(server).request(
            "POST", "/jobs", params={"size": 1}, json={"name": "x"}, headers={"X-Trace": "7"}
        )
        assert response.status_code == 200
        first, token_request, retry = server.requests
        assert token_request.path == TOKEN_PATH
        assert (retry.method, retry.target, retry.body) == (first.method, first.target, first.body)
        assert first.headers.pop("authorization") == f"Bearer {ACCESS_TOKEN}"
        assert retry.headers.pop("authorization") == "Bearer " + cloud.issued[0]
        assert retry.headers == first.headers
        assert first.headers["x-trace"] == "7"
        assert json.loads(retry.body) == {"name": "x"}

    def test_a_second_401_raises_after_one_retry(self, server):
        server.handler = lambda request: (
            json_reply(200, {"access_token": ACCESS_TOKEN})
            if request.path == TOKEN_PATH
            else json_reply(401, {"detail": "Go away."})
        )
        with pytest.raises(xcc.HTTPError) as info:
            connect(server).request("GET", "/jobs")
        assert str(info.value) == "Go away."
        assert info.value.response.status_code == 401
        assert [r.path for r in server.requests] == ["/jobs", TOKEN_PATH, "/jobs"]

    def test_a_401_without_refresh_token_raises_at_once(self, server):
        server.handler = Cloud(valid=[])
        with pytest.raises(xcc.HTTPError) as info:
            connect(server, refresh_token=None).request("GET", "/jobs")
        assert info.value.response.status_code == 401
        assert [r.path for r in server.requests] == ["/jobs"]

    def test_refresh_inside_request_uses_the_calls_timeout(self, server):
        def handler(request):
            if request.path == TOKEN_PATH:
                time.sleep(1)
            return json_reply(200, {"access_token": ACCESS_TOKEN})

        server.handler = handler
        with pytest.raises(xcc.Timeout) as info:
            connect(server, access_token=None).request("GET", "/jobs", timeout=0.2)
        assert str(info.value) == f"POST request to '{server.url}{TOKEN_PATH}' timed out"

    def test_refresh_inside_request_uses_the_calls_verify(self, tls_server, certificates):
        tls_server.handler = Cloud()
        connection = connect(tls_server, access_token=None)
        assert connection.request("GET", "/jobs", verify=certificates["ca"]).ok
        assert [r.path for r in tls_server.requests] == [TOKEN_PATH, "/jobs"]

    @pytest.mark.parametrize(
        "status, body, message",
        [
            (
                400,
                {"code": "validation-error", "meta": {"_schema": ["Foo", "Bar"], "size": ["Baz"]}},
                "Foo; Bar; Baz",
            ),
            (
                400,
                {
                    "code": "validation-error",
                    "meta": {"head": {"0": ["Foo", "Bar"]}, "tail": {"0": ["Baz"], "1": ["Bud"]}},
                },
                "Foo; Bar; Baz; Bud",
            ),
            (400, {"code": "validation-error", "meta": {}, "detail": "Bad."}, "Bad."),
            (404, {"detail": "Job not found."}, "Job not found."),
            (500, {"detail": "Oops."}, "Oops."),
            (404, ["not", "an", "object"], "404 Client Error: Not Found for url: {url}"),
            (500, None, "500 Server Error: Internal Server Error for url: {url}"),
            (409, {"code": "conflict"}, "409 Client Error: Conflict for url: {url}"),
        ],
    )
    @pytest.mark.parametrize("stream", [False, True])
    def test_http_errors_are_worded_as_the_original_words_them(
        self, server, status, body, message, stream
    ):
        server.handler = lambda request: (
            Reply(status, b"<html>not json</html>") if body is None else json_reply(status, body)
        )
        with pytest.raises(xcc.HTTPError) as info:
            connect(server).request("GET", "/jobs/1", stream=stream)
        assert str(info.value) == message.format(url=server.url + "/jobs/1")
        assert info.value.response.status_code == status

    @pytest.mark.parametrize(
        "status, body",
        [
            (404, {"detail": "\x1b[2J\x1b]0;owned\x07line\n" + "A" * 100000}),
            (400, {"code": "validation-error", "meta": {"a": ["\x1b[2J\x1b]0;owned\x07line\n"]
                                                       + ["A" * 100000]}}),
        ],
        ids=["detail", "validation-messages"],
    )  # fmt: skip
    def test_a_servers_words_in_an_http_error_are_escaped_and_bounded(self, server, status, body):
        server.handler = lambda request: json_reply(status, body)
        with pytest.raises(xcc.HTTPError) as info:
            connect(server).request("GET", "/jobs/1")
        message = str(info.value)
        assert message.startswith("\\x1b[2J\\x1b]0;owned\\x07line\\x0a")
        assert len(message) < 1100 and message.endswith("AAA...")

    def test_timeout_none_and_pairs_are_accepted(self, server):
        connection = connect(server)
        assert connection.request("GET", "/", timeout=None).ok
        assert connection.request("GET", "/", timeout=(1, 2)).ok

    @pytest.mark.parametrize(
        "kwargs, error",
        [
            ({"timeout": 0}, ValueError),
            ({"timeout": "10"}, ValueError),
            ({"verify": 1}, TypeError),
            ({"proxies": "http://proxy"}, TypeError),
            ({"params": 5}, TypeError),
            ({"data": 5}, TypeError),
            ({"json": {"x": float("nan")}}, ValueError),
            ({"headers": "X: y"}, TypeError),
            ({"cookies": {}}, TypeError),
        ],
    )
    def test_bad_arguments_raise_before_anything_is_sent(self, server, kwargs, error):
        call = lambda: connect(server, access_token=None).request("GET", "/", **kwargs)
        refused_before_sending(server, error, call)

    @pytest.mark.parametrize(
        "timeout",
        [float("inf"), (3, float("inf")), (float("inf"), 3), 1e12, 2147484, (None, 1e10)],
    )
    def test_a_timeout_too_large_for_the_platform_is_refused_before_connecting(
        self, server, timeout
    ):
        call = lambda: connect(server).request("GET", "/", timeout=timeout)
        error = refused_before_sending(server, ValueError, call)
        assert "at most 2147483 seconds" in str(error) and "None" in str(error)

    def test_the_largest_timeout_is_accepted(self, server):
        assert connect(server).request("GET", "/", timeout=(2147483, 2147483)).ok
        assert connect(server).request("GET", "/", timeout=2147483.0).ok

    @pytest.mark.parametrize("kind", ["binary-file", "text-file", "bytes-io"])
    def test_a_file_as_data_is_read_once_and_sent_whole_again_after_a_401(
        self, server, tmp_path, kind
    ):
        content = '{"name": "job", "note": "é"}'
        path = tmp_path / "job.json"
        path.write_text(content, encoding="utf-8")
        cloud = server.handler = Cloud(valid=())  # the first answer is a 401
        with contextlib.ExitStack() as stack:
            data = {
                "binary-file": lambda: stack.enter_context(open(str(path), "rb")),
                "text-file": lambda: stack.enter_context(open(str(path), encoding="utf-8")),
                "bytes-io": lambda: io.BytesIO(content.encode("utf-8")),
            }[kind]()
            assert connect(server).request("POST", "/jobs", data=data).ok
        assert len(cloud.issued) == 1
        sent = [(r.path, r.body) for r in server.requests]
        body = content.encode("utf-8")
        assert sent == [("/jobs", body), (TOKEN_PATH, sent[1][1]), ("/jobs", body)]
        assert "content-type" not in server.requests[0].headers

    @pytest.mark.parametrize(
        "data, named",
        [((chunk for chunk in [b"ab", b"cd"]), "generator"),
         (iter([b"ab", b"cd"]), type(iter([])).__name__),  # list_iterator on CPython
         ([b"ab", b"cd"], "bytes"), (["ab", "cd"], "str"), ({("a", "b")}, "set"),
         ([("a", "b"), ("c",)], "tuple")],
        ids=["generator", "iterator", "list-of-bytes", "list-of-str", "set", "short-pair"],
    )  # fmt: skip
    def test_data_that_is_no_body_form_or_file_is_refused_naming_the_type(
        self, server, data, named
    ):
        call = lambda: connect(server).request("POST", "/jobs", data=data)
        error = refused_before_sending(server, TypeError, call)
        assert named in str(error)

    @pytest.mark.parametrize(
        "bad", [{"timeout": -1}, {"verify": 3}, {"proxies": ["http://u:p@h"]}], ids=str
    )
    def test_a_refused_argument_leaves_a_data_file_unread(self, server, bad):
        data = io.BytesIO(b"payload")
        call = lambda: connect(server).request("POST", "/upload", data=data, **bad)
        refused_before_sending(server, (TypeError, ValueError), call)
        assert data.tell() == 0

    def test_params_of_a_wrong_type_are_named_not_shown(self, server):
        call = lambda: connect(server).request("GET", "/", params=[REFRESH_TOKEN])
        error = refused_before_sending(server, TypeError, call)
        assert "not list" in str(error)
        assert_not_leaked(everything_shown(error), *secrets_of())

    def test_redirect_to_port_0_is_refused_not_sent_to_port_80(self, servers):
        server = servers.http(lambda r: Reply(302, headers=[("Location", "http://127.0.0.1:0/")]))
        with pytest.raises(xcc.RequestException) as info:
            connect(server).request("GET", "/")
        assert type(info.value) is xcc.RequestException
        assert "invalid port 0" in str(info.value)

    def test_error_body_of_deeply_nested_json_gives_the_http_error(self, servers):
        body = b"[" * 100000 + b"]" * 100000
        server = servers.http(
            lambda request: Reply(400, body, [("Content-Type", "application/json")])
        )
        with pytest.raises(xcc.HTTPError) as info:
            connect(server).request("GET", "/deep")
        assert str(info.value).startswith("400 Client Error: Bad Request for url: ")

    def test_a_reason_with_an_escape_is_refused_and_a_c1_control_is_shown_escaped(self, servers):
        replies = {"/esc": b"HTTP/1.1 404 Not \x1b[2J\r\nContent-Length: 0\r\n\r\n",
                   "/c1": b"HTTP/1.1 404 Not \xc2\x9b2J\r\nContent-Length: 0\r\n\r\n"}  # fmt: skip

        def serve(sock, index):
            request = server.read(sock)
            if request is not None:
                sock.sendall(replies[request.path])

        server = servers.raw(serve)
        with pytest.raises(xcc.ConnectionError):
            connect(server).request("GET", "/esc")
        with pytest.raises(xcc.HTTPError) as info:
            connect(server).request("GET", "/c1")
        assert info.value.response.reason == "Not \x9b2J"
        assert str(info.value).startswith("404 Client Error: Not \\x9b2J for url: ")


class TestUpdateAccessToken:
    @pytest.mark.parametrize("exp", [1e20, float("nan"), float("inf"), -1e20])
    @pytest.mark.parametrize("log", [False, True], ids=["quiet", "logged"])
    def test_a_token_whose_expiry_is_no_date_is_used_and_judged_by_the_server(
        self, server, caplog, exp, log
    ):
        issued = make_jwt(exp)  # json.dumps writes NaN and Infinity, as some servers do

        def handler(request):
            if request.path == TOKEN_PATH:
                return json_reply(200, {"access_token": issued})
            return json_reply(200, {"path": request.path})

        server.handler = handler
        if log:
            caplog.set_level(logging.DEBUG, logger="xcc")
        connection = connect(server, access_token=None)
        assert connection.request("GET", "/jobs").json() == {"path": "/jobs"}
        assert connection.request("GET", "/jobs").ok  # no refresh before each request
        assert [r.path for r in server.requests] == [TOKEN_PATH, "/jobs", "/jobs"]
        assert server.requests[1].headers["authorization"] == "Bearer " + issued
        if log:
            assert "Got a new access token, valid until an unknown time" in logged(caplog)

    def test_a_token_whose_claims_are_nested_too_deep_has_no_expiry_it_reads(self, server):
        claims = base64.urlsafe_b64encode(b"[" * 100000 + b"]" * 100000).rstrip(b"=")
        issued = "eyJhbGciOiJub25lIn0." + claims.decode("ascii") + ".sig"
        server.handler = lambda request: (
            json_reply(200, {"access_token": issued})
            if request.path == TOKEN_PATH
            else json_reply(200, {})
        )
        assert connect(server, access_token=issued).request("GET", "/jobs").ok
        assert connect(server, access_token=None).request("GET", "/jobs").ok
        assert [r.path for r in server.requests] == ["/jobs", TOKEN_PATH, "/jobs"]
        assert server.requests[2].headers["authorization"] == "Bearer " + issued

    def test_success_replaces_the_access_token(self, server):
        cloud = server.handler = Cloud()
        connection = connect(server)
        connection.update_access_token()
        assert connection.access_token == cloud.issued[0]
        assert [r.path for r in server.requests] == [TOKEN_PATH]

    def test_invalid_grant_names_the_api_key(self, server):
        server.handler = lambda request: json_reply(400, {"error": "invalid_grant"})
        with pytest.raises(xcc.HTTPError) as info:
            connect(server).update_access_token()
        assert str(info.value) == "Refresh token (e.g., Xanadu Cloud API key) is invalid"
        assert info.value.response.status_code == 400

    @pytest.mark.parametrize("status", [400, 403, 500])
    def test_other_errors_are_worded_as_raise_for_status(self, server, status):
        server.handler = lambda request: json_reply(status, {"error": "other", "detail": "x"})
        with pytest.raises(xcc.HTTPError) as info:
            connect(server).update_access_token()
        kind = "Client" if status < 500 else "Server"
        reason = {400: "Bad Request", 403: "Forbidden", 500: "Internal Server Error"}[status]
        assert (
            str(info.value) == f"{status} {kind} Error: {reason} for url: {server.url}{TOKEN_PATH}"
        )

    @pytest.mark.parametrize(
        "reply",
        [
            Reply(200, b"<html>maintenance</html>"),
            json_reply(200, {"token": "x"}),
            json_reply(200, ["access_token"]),
            json_reply(200, {"access_token": "bad token\r\nX-Injected: 1"}),
            json_reply(200, {"access_token": None}),
        ],
        ids=["not-json", "no-access-token", "a-list", "bad-characters", "null"],
    )
    def test_a_response_without_a_valid_token_is_a_value_error(self, server, reply):
        server.handler = lambda request: reply
        connection = connect(server)
        with pytest.raises(ValueError) as info:
            connection.update_access_token()
        assert str(info.value) == "Xanadu Cloud returned an invalid access token response."
        assert connection.access_token == ACCESS_TOKEN

    def test_without_refresh_token_nothing_is_sent(self, server):
        call = connect(server, refresh_token=None).update_access_token
        error = refused_before_sending(server, ValueError, call)
        assert "refresh token" in str(error)

    def test_the_refresh_token_never_follows_a_redirect(self, servers):
        elsewhere = servers.http()
        server = servers.http(
            lambda request: Reply(307, headers={"Location": elsewhere.url + TOKEN_PATH})
        )
        with pytest.raises(ValueError):
            connect(server).update_access_token()
        assert elsewhere.requests == []

    @pytest.mark.parametrize("how", ["update_access_token", "request", "command-line"])
    def test_an_error_of_the_token_request_that_echoes_the_api_key_is_masked(self, server, how):
        # A gateway that repeats the form it was sent in its reason phrase.
        echo = lambda request: raw_response(b"", "502 rejected " + request.body.decode())
        server.handler = echo
        if how == "command-line":
            code, stdout, stderr = run_cli(["ping"], cli_settings(server))
            assert code == 1 and "502 Server Error: rejected" in stderr
            assert_not_leaked(stdout + stderr, *secrets_of())
            return
        connection = connect(server, access_token=None)
        with pytest.raises(xcc.HTTPError) as info:
            if how == "request":
                connection.request("GET", "/jobs")
            else:
                connection.update_access_token()
        assert str(info.value) == (
            "502 Server Error: rejected grant_type=refresh_token&refresh_token=[token]"
            f"&client_id=public for url: {server.url}{TOKEN_PATH}"
        )
        assert_not_leaked(everything_shown(info.value) + reachable_texts(info.value), *secrets_of())

    def test_an_api_key_echoed_as_the_form_encoded_it_is_masked(self, server):
        key = "AbCd/0123+4567==é"  # "/", "+", "=" and "é" change when form-encoded
        echo = lambda request: Reply(400, body=b"Bad " + request.body)
        server.handler = echo
        connection = connect(server, refresh_token=key, access_token=None)
        with pytest.raises(xcc.HTTPError) as info:
            connection.update_access_token()
        encoded = quote_plus(key, safe="~")  # as requests and urlencode() send it
        assert encoded in server.requests[0].body.decode()  # what the server echoed
        shown = everything_shown(info.value) + reachable_texts(info.value)
        assert_not_leaked(shown, key, encoded, encoded[:12])


# ------------------------------------------------------------------ Connection: settings


def write_dotenv(directory, text):
    """Writes ``text`` as ``<directory>/xanadu-cloud/.env``; returns the file's path."""
    folder = os.path.join(str(directory), "xanadu-cloud")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, ".env")
    with open(path, "w", encoding="utf-8") as file:
        file.write(text)
    return path


def write_home_dotenv(home, text):
    """Writes the ``.env`` file where ``xcc config`` saves it under ``home``."""
    return write_dotenv(os.path.join(str(home), ".config"), text)


class TestLoad:
    """``Connection.load()``: the settings that the original client's ``xcc config`` saves."""

    @pytest.mark.parametrize("kind", ["not-utf-8", "a-folder"])
    def test_a_settings_file_that_cannot_be_read_is_a_value_error_naming_it(
        self, clean_environment, kind
    ):
        path = write_home_dotenv(clean_environment, "")
        if kind == "a-folder":
            os.remove(path)
            os.mkdir(path)
        else:
            with open(path, "wb") as file:
                file.write(b"XANADU_CLOUD_HOST=caf\xe9\n")
        with pytest.raises(ValueError) as info:
            xcc.Connection.load()
        assert str(info.value).startswith(f"Cannot read the settings file {path!r}: ")

    def test_reads_the_file_that_xcc_config_writes(self, clean_environment):
        path = write_home_dotenv(
            clean_environment,
            f"XANADU_CLOUD_REFRESH_TOKEN='{REFRESH_TOKEN}'\n"
            "XANADU_CLOUD_HOST='cloud.example.org'\n"
            "XANADU_CLOUD_PORT='8443'\n"
            "XANADU_CLOUD_TLS='False'\n",
        )
        assert path == os.path.join(str(clean_environment), ".config", "xanadu-cloud", ".env")
        connection = xcc.Connection.load()
        assert connection.refresh_token == REFRESH_TOKEN
        assert connection.access_token is None
        assert (connection.host, connection.port, connection.tls) == (
            "cloud.example.org",
            8443,
            False,
        )
        assert connection.url("/jobs") == "http://cloud.example.org:8443/jobs"

    def test_reads_double_quotes_bare_values_export_comments_and_blank_lines(
        self, clean_environment
    ):
        write_home_dotenv(
            clean_environment,
            "# Xanadu Cloud settings\n"
            "\n"
            f'export XANADU_CLOUD_REFRESH_TOKEN="{REFRESH_TOKEN}"\n'
            "   \n"
            f"XANADU_CLOUD_ACCESS_TOKEN={ACCESS_TOKEN}\n"
            "XANADU_CLOUD_HOST=cloud.example.org   # the staging server\n"
            "# XANADU_CLOUD_HOST=commented.example.org\n"
            "  XANADU_CLOUD_PORT = 8080\n"
            'XANADU_CLOUD_TLS="yes"\n',
        )
        connection = xcc.Connection.load()
        assert connection.refresh_token == REFRESH_TOKEN
        assert connection.access_token == ACCESS_TOKEN
        assert (connection.host, connection.port, connection.tls) == (
            "cloud.example.org",
            8080,
            True,
        )

    def test_reads_a_file_without_a_final_newline(self, clean_environment):
        write_home_dotenv(clean_environment, f"XANADU_CLOUD_ACCESS_TOKEN='{ACCESS_TOKEN}'")
        assert xcc.Connection.load().access_token == ACCESS_TOKEN

    def test_uses_xdg_config_home_when_set(self, clean_environment, tmp_path, monkeypatch):
        write_home_dotenv(
            clean_environment,
            f"XANADU_CLOUD_REFRESH_TOKEN='{REFRESH_TOKEN}'\nXANADU_CLOUD_HOST='home.example'\n",
        )
        xdg = tmp_path / "xdg"
        write_dotenv(
            xdg, f"XANADU_CLOUD_ACCESS_TOKEN='{ACCESS_TOKEN}'\nXANADU_CLOUD_HOST='xdg.example'\n"
        )
        monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
        connection = xcc.Connection.load()
        assert connection.host == "xdg.example"
        assert connection.access_token == ACCESS_TOKEN
        assert connection.refresh_token is None

    def test_environment_overrides_the_file(self, clean_environment, monkeypatch):
        write_home_dotenv(
            clean_environment,
            f"XANADU_CLOUD_REFRESH_TOKEN='{REFRESH_TOKEN}'\n"
            "XANADU_CLOUD_HOST='file.example'\n"
            "XANADU_CLOUD_PORT='1111'\n"
            "XANADU_CLOUD_TLS='False'\n",
        )
        monkeypatch.setenv("XANADU_CLOUD_HOST", "env.example")
        monkeypatch.setenv("XANADU_CLOUD_PORT", "2222")
        monkeypatch.setenv("XANADU_CLOUD_ACCESS_TOKEN", ACCESS_TOKEN)
        connection = xcc.Connection.load()
        assert (connection.host, connection.port, connection.tls) == ("env.example", 2222, False)
        assert connection.refresh_token == REFRESH_TOKEN
        assert connection.access_token == ACCESS_TOKEN

    def test_keyword_overrides_win_over_environment_and_file(self, clean_environment, monkeypatch):
        other = make_jwt(int(time.time()) + 3600, "other")
        write_home_dotenv(
            clean_environment,
            f"XANADU_CLOUD_REFRESH_TOKEN='{REFRESH_TOKEN}'\nXANADU_CLOUD_HOST='file.example'\n"
            "XANADU_CLOUD_TLS='False'\n",
        )
        monkeypatch.setenv("XANADU_CLOUD_HOST", "env.example")
        monkeypatch.setenv("XANADU_CLOUD_PORT", "2222")
        connection = xcc.Connection.load(
            refresh_token=other, host="kw.example", port=3333, tls=True, headers={"X-A": "b"}
        )
        assert connection.refresh_token == other
        assert (connection.host, connection.port, connection.tls) == ("kw.example", 3333, True)
        assert connection.headers["X-A"] == "b"

    def test_defaults_are_the_seeds_when_only_a_token_is_set(self, monkeypatch):
        monkeypatch.setenv("XANADU_CLOUD_REFRESH_TOKEN", REFRESH_TOKEN)
        connection = xcc.Connection.load()
        assert connection.refresh_token == REFRESH_TOKEN
        assert connection.access_token is None
        assert connection.host == "platform.strawberryfields.ai"
        assert connection.port == 443
        assert connection.tls is True
        assert connection.url() == "https://platform.strawberryfields.ai:443/"

    @pytest.mark.parametrize(
        "spelling, expected",
        [("true", True), ("True", True), ("TRUE", True), ("1", True), ("yes", True),
         ("YES", True), ("on", True), ("On", True), ("t", True), ("T", True), ("y", True),
         ("Y", True), ("false", False), ("False", False), ("FALSE", False), ("0", False),
         ("no", False), ("No", False), ("off", False), ("OFF", False), ("f", False),
         ("F", False), ("n", False), ("N", False)],
    )  # fmt: skip
    def test_tls_spellings_in_the_environment(self, monkeypatch, spelling, expected):
        monkeypatch.setenv("XANADU_CLOUD_REFRESH_TOKEN", REFRESH_TOKEN)
        monkeypatch.setenv("XANADU_CLOUD_TLS", spelling)
        assert xcc.Connection.load().tls is expected

    @pytest.mark.parametrize(
        "line, expected",
        [("XANADU_CLOUD_TLS='Off'", False), ('XANADU_CLOUD_TLS="Y"', True),
         ("XANADU_CLOUD_TLS=0", False), ("XANADU_CLOUD_TLS=True", True)],
    )  # fmt: skip
    def test_tls_spellings_in_the_file(self, clean_environment, line, expected):
        write_home_dotenv(
            clean_environment, f"XANADU_CLOUD_REFRESH_TOKEN={REFRESH_TOKEN}\n{line}\n"
        )
        assert xcc.Connection.load().tls is expected

    @pytest.mark.parametrize(
        "key, value",
        [("PORT", "eighty"), ("PORT", ""), ("PORT", "8.5"), ("PORT", "70000"), ("PORT", "0"),
         ("TLS", "maybe"), ("TLS", ""), ("TLS", "2"), ("TLS", "tru")],
    )  # fmt: skip
    def test_bad_value_in_the_file_names_the_key_and_the_file(self, clean_environment, key, value):
        path = write_home_dotenv(
            clean_environment,
            f"XANADU_CLOUD_REFRESH_TOKEN='{REFRESH_TOKEN}'\nXANADU_CLOUD_{key}='{value}'\n",
        )
        with pytest.raises(ValueError) as info:
            xcc.Connection.load()
        assert f"XANADU_CLOUD_{key}" in str(info.value)
        assert path in str(info.value)
        assert REFRESH_TOKEN not in str(info.value)

    @pytest.mark.parametrize(
        "key, value", [("PORT", "eighty"), ("PORT", "70000"), ("TLS", "maybe"), ("TLS", "")]
    )
    def test_bad_value_in_the_environment_names_the_variable(self, monkeypatch, key, value):
        monkeypatch.setenv("XANADU_CLOUD_REFRESH_TOKEN", REFRESH_TOKEN)
        monkeypatch.setenv(f"XANADU_CLOUD_{key}", value)
        with pytest.raises(ValueError) as info:
            xcc.Connection.load()
        assert f"XANADU_CLOUD_{key}" in str(info.value)
        assert "environment" in str(info.value)
        assert REFRESH_TOKEN not in str(info.value)

    @pytest.mark.parametrize("key, start", [("TLS", "false"), ("PORT", "443"),
                                            ("HOST", "cloud.example.org")])  # fmt: skip
    @pytest.mark.parametrize("where", ["file", "environment"])
    def test_a_bad_setting_is_named_without_its_value(
        self, clean_environment, monkeypatch, key, start, where
    ):
        # A line that lost its line break runs on into the next one, API key included.
        value = f"{start}XANADU_CLOUD_REFRESH_TOKEN={REFRESH_TOKEN}"
        path = write_home_dotenv(clean_environment, f"XANADU_CLOUD_{key}={value}\n")
        if where == "environment":
            os.remove(path)
            monkeypatch.setenv(f"XANADU_CLOUD_{key}", value)
            path = "the environment variable " + f"XANADU_CLOUD_{key}"
        with pytest.raises(ValueError) as info:
            xcc.Connection.load()
        assert str(info.value).startswith(f"XANADU_CLOUD_{key} (from {path}) is not ")
        assert str(info.value).endswith(" (its value is not shown: it may hold a token)")
        shown = everything_shown(info.value) + reachable_texts(info.value)
        assert_not_leaked(shown, start + "XANADU", *secrets_of())

    def test_the_command_line_names_a_bad_setting_without_its_value(self, clean_environment):
        value = f"falseXANADU_CLOUD_REFRESH_TOKEN={REFRESH_TOKEN}"
        path = write_home_dotenv(clean_environment, f"XANADU_CLOUD_TLS={value}\n")
        code, out, err = run_cli(["ping"])
        assert (code, out) == (1, "")
        assert err == (
            f"xcc.py: error: XANADU_CLOUD_TLS (from {path}) is not true or false (its value is"
            " not shown: it may hold a token)\n"
        )

    def test_no_token_anywhere_raises_the_seeds_error(self, clean_environment, monkeypatch):
        write_home_dotenv(clean_environment, "XANADU_CLOUD_HOST='cloud.example.org'\n")
        monkeypatch.setenv("XANADU_CLOUD_PORT", "8443")
        with pytest.raises(ValueError) as info:
            xcc.Connection.load()
        assert str(info.value) == MISSING_TOKEN_MESSAGE

    def test_no_settings_at_all_raises_the_seeds_error(self):
        with pytest.raises(ValueError) as info:
            xcc.Connection.load()
        assert str(info.value) == MISSING_TOKEN_MESSAGE

    def test_loaded_connection_talks_to_the_configured_server(
        self, servers, clean_environment, monkeypatch
    ):
        cloud = Cloud(routes={"/devices": lambda request: json_reply(200, {"data": []})})
        server = servers.http(cloud)
        write_home_dotenv(
            clean_environment,
            "XANADU_CLOUD_HOST='127.0.0.1'\n"
            f"XANADU_CLOUD_PORT='{server.port}'\n"
            "XANADU_CLOUD_TLS='False'\n",
        )
        monkeypatch.setenv("XANADU_CLOUD_REFRESH_TOKEN", REFRESH_TOKEN)
        with xcc.Connection.load() as connection:
            assert connection.request("GET", "/devices").json() == {"data": []}
        assert [(r.method, r.path) for r in server.requests] == [
            ("POST", TOKEN_PATH),
            ("GET", "/devices"),
        ]
        assert server.requests[1].headers["authorization"] == f"Bearer {cloud.issued[0]}"

    def test_loaded_connection_uses_https_when_tls_is_not_set(
        self, tls_server, certificates, monkeypatch
    ):
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", certificates["ca"])
        monkeypatch.setenv("XANADU_CLOUD_ACCESS_TOKEN", ACCESS_TOKEN)
        monkeypatch.setenv("XANADU_CLOUD_HOST", "127.0.0.1")
        monkeypatch.setenv("XANADU_CLOUD_PORT", str(tls_server.port))
        with xcc.Connection.load() as connection:
            assert connection.ping().status_code == 200
        assert [r.path for r in tls_server.requests] == ["/healthz"]
        assert tls_server.requests[0].headers["authorization"] == f"Bearer {ACCESS_TOKEN}"


# ------------------------------------------------------------------------------ Response


def chunked(pieces, trailers=b"", extension=b""):
    """Returns ``pieces`` framed as a chunked body (sizes in upper-case hex)."""
    out = b""
    for piece in pieces:
        out += b"%X%s\r\n%s\r\n" % (len(piece), extension, piece)
    return out + b"0\r\n" + trailers + b"\r\n"


def megabyte():
    """Returns about 1 MiB of bytes that do not repeat, and a tail that makes the last piece
    shorter than 32 KiB."""
    return b"".join(hashlib.sha256(b"%d" % i).digest() for i in range(32768)) + b"tail"


def json_lines(count=5000):
    """Returns a compressible JSON document of some hundred kilobytes."""
    return json.dumps([{"index": i, "value": f"v{i * i}"} for i in range(count)]).encode()


def deflate_raw(data):
    """Returns ``data`` as a raw deflate stream (RFC 1951, no zlib wrapper)."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


ENCODERS = {
    "gzip": ("gzip", gzip.compress),
    "deflate-zlib": ("deflate", zlib.compress),
    "deflate-raw": ("deflate", deflate_raw),
}


def get_response(connection, method, path, **kwargs):
    """Returns the response to a request, also when ``request()`` raised it in an HTTPError."""
    try:
        return connection.request(method, path, **kwargs)
    except xcc.HTTPError as exc:
        return exc.response


class TestResponse:
    """The members of requests.Response that callers use, over real sockets."""

    @pytest.mark.parametrize(
        "reply, kwargs, status, reason, ok",
        [
            (Reply(200, b"{}"), {}, 200, "OK", True),
            (Reply(201, b"{}"), {}, 201, "Created", True),
            (Reply(200, b"{}", reason="Everything Is Fine"), {}, 200, "Everything Is Fine", True),
            (Reply(204), {}, 204, "No Content", True),
            (
                Reply(302, headers={"Location": "/elsewhere"}),
                {"allow_redirects": False},
                302,
                "Found",
                True,
            ),
            (Reply(404, b"nope"), {}, 404, "Not Found", False),
            (Reply(503, b"down"), {}, 503, "Service Unavailable", False),
        ],
    )
    def test_status_reason_ok_bool_and_repr(self, server, reply, kwargs, status, reason, ok):
        server.handler = lambda request: reply
        response = get_response(connect(server), "GET", "/status", **kwargs)
        assert isinstance(response, xcc.Response)
        assert response.status_code == status
        assert response.reason == reason
        assert response.ok is ok
        assert bool(response) is ok
        assert repr(response) == f"<Response [{status}]>"

    def test_headers_are_case_insensitive(self, server):
        server.handler = lambda request: Reply(
            200, b"{}", [("X-Request-Id", "abc-123"), ("Content-Type", "application/json")]
        )
        headers = connect(server).request("GET", "/").headers
        assert headers["X-Request-Id"] == "abc-123"
        assert headers["x-request-id"] == "abc-123"
        assert headers["X-REQUEST-ID"] == "abc-123"
        assert "x-ReQuEsT-iD" in headers
        assert headers.get("content-type") == "application/json"
        assert headers.get("X-Missing") is None
        assert "X-Missing" not in headers

    def test_url_is_the_final_url_after_redirects(self, server):
        def handler(request):
            if request.path == "/start":
                return Reply(302, headers={"Location": "/final?page=2"})
            return Reply(200, b"{}")

        server.handler = handler
        connection = connect(server)
        assert connection.request("GET", "/start").url == connection.url("/final?page=2")
        response = connection.request("GET", "/jobs", params={"size": 5})
        assert response.url == connection.url("/jobs?size=5")

    def test_content_is_the_body_bytes_as_sent(self, server):
        body = bytes(range(256)) * 3
        server.handler = lambda request: Reply(200, body, {"Content-Type": "image/png"})
        assert connect(server).request("GET", "/").content == body

    @pytest.mark.parametrize(
        "content_type, body, text",
        [
            ("text/plain; charset=iso-8859-1", "café".encode("latin-1"), "café"),
            ('text/html; charset="ISO-8859-1"', "naïve".encode("latin-1"), "naïve"),
            ("text/plain; charset=utf-16", "qubit".encode("utf-16"), "qubit"),
            ("text/plain", "café ☕".encode(), "café ☕"),
            ("application/json", '{"name": "Ω"}'.encode(), '{"name": "Ω"}'),
            (None, "écho".encode(), "écho"),
            ("text/plain; charset=idna", "naïve..x".encode(), "naïve..x"),  # refuses "replace"
            ("text/plain; charset=hex", "écho".encode(), "écho"),  # not a text encoding
        ],
    )
    def test_text_decodes_with_the_charset_else_utf8(self, server, content_type, body, text):
        headers = {"Content-Type": content_type} if content_type else {}
        server.handler = lambda request: Reply(200, body, headers)
        assert connect(server).request("GET", "/").text == text

    def test_json_parses_the_body_and_passes_keyword_arguments(self, server):
        server.handler = lambda request: json_reply(200, {"status": "online", "price": 1.10})
        response = connect(server).request("GET", "/devices/X8_01")
        assert response.json() == {"status": "online", "price": 1.10}
        assert response.json(parse_float=decimal.Decimal)["price"] == decimal.Decimal("1.1")

    @pytest.mark.parametrize("body", [b"<html>Bad Gateway</html>", b"", b'{"open": '])
    def test_json_of_a_body_that_is_not_json_raises_value_error(self, server, body):
        server.handler = lambda request: Reply(200, body, {"Content-Type": "text/html"})
        response = connect(server).request("GET", "/")
        with pytest.raises(ValueError):
            response.json()

    @pytest.mark.parametrize(
        "status, wording",
        [
            (400, "400 Client Error: Bad Request for url: {url}"),
            (404, "404 Client Error: Not Found for url: {url}"),
            (500, "500 Server Error: Internal Server Error for url: {url}"),
            (503, "503 Server Error: Service Unavailable for url: {url}"),
        ],
    )
    def test_raise_for_status_words_errors_as_requests(self, server, status, wording):
        server.handler = lambda request: Reply(
            status, b"plain text", {"Content-Type": "text/plain"}
        )
        connection = connect(server)
        response = get_response(connection, "GET", "/jobs/missing", params={"size": 1})
        message = wording.format(url=connection.url("/jobs/missing?size=1"))
        with pytest.raises(xcc.HTTPError) as info:
            response.raise_for_status()
        assert str(info.value) == message
        assert info.value.response is response

    @pytest.mark.parametrize(
        "reply, kwargs",
        [
            (Reply(200, b"{}"), {}),
            (Reply(201, b"{}"), {}),
            (Reply(204), {}),
            (Reply(301, headers={"Location": "/moved"}), {"allow_redirects": False}),
            (Reply(302, headers={"Location": "/moved"}), {"allow_redirects": False}),
            (Reply(304), {}),
        ],
    )
    def test_raise_for_status_does_not_raise_for_2xx_and_3xx(self, server, reply, kwargs):
        server.handler = lambda request: reply
        response = connect(server).request("GET", "/", **kwargs)
        assert response.status_code == reply.status
        assert response.raise_for_status() is None

    def test_iter_content_streams_a_megabyte_in_32_kib_pieces(self, server):
        body = megabyte()
        server.handler = lambda request: Reply(200, body, {"Content-Type": "application/zip"})
        response = connect(server).request("GET", "/jobs/1/result", stream=True)
        pieces = list(response.iter_content(32768))
        assert b"".join(pieces) == body
        assert len(pieces) == -(-len(body) // 32768)
        assert all(len(piece) == 32768 for piece in pieces[:-1])
        assert len(pieces[-1]) == len(body) % 32768

    def test_stream_returns_once_the_head_arrives_before_the_body(self, servers):
        release = threading.Event()

        def reply(sock):
            sock.sendall(raw_head("200 OK", [("Content-Length", 10)]))
            release.wait(5)
            sock.sendall(b"0123456789")

        raw = fault_server(servers, reply, hold=True)
        try:
            # A client that read the body before returning would time out here.
            response = connect(raw).request("GET", "/result", stream=True, timeout=(5, 0.5))
            assert response.status_code == 200
        finally:
            release.set()
        assert response.content == b"0123456789"

    def test_iter_content_after_content_gives_slices_of_it(self, server):
        body = b"0123456789abcdefghijklmnopqrstuvwxyz"
        server.handler = lambda request: Reply(200, body)
        response = connect(server).request("GET", "/")
        assert response.content == body
        expected = [body[i : i + 5] for i in range(0, len(body), 5)]
        assert list(response.iter_content(5)) == expected
        assert list(response.iter_content(5)) == expected  # the body is kept, not consumed

    @pytest.mark.parametrize("second", ["iter_content", "content"])
    def test_a_stream_consumed_by_iter_content_cannot_be_read_again(self, server, second):
        server.handler = lambda request: Reply(200, b"x" * 1000)
        response = connect(server).request("GET", "/", stream=True)
        assert b"".join(response.iter_content(100)) == b"x" * 1000
        with pytest.raises(RuntimeError):
            if second == "iter_content":
                response.iter_content(100)
            else:
                response.content  # noqa: B018

    @pytest.mark.parametrize("how", ["close", "with"])
    def test_close_and_the_context_manager_release_the_connection(self, servers, how):
        ended = threading.Event()

        def reply(sock):
            sock.sendall(raw_head("200 OK", [("Content-Length", 100000)]) + b"x" * 1000)
            wait_for_close(sock)
            ended.set()

        raw = fault_server(servers, reply)
        connection = connect(raw)
        if how == "close":
            response = connection.request("GET", "/", stream=True)
            assert next(response.iter_content(100)) == b"x" * 100
            assert not ended.is_set()
            response.close()
        else:
            with connection.request("GET", "/", stream=True) as response:
                assert next(response.iter_content(100)) == b"x" * 100
                assert not ended.is_set()
        assert ended.wait(5), "the client kept the connection of a closed response open"

    @pytest.mark.parametrize("encoding", sorted(ENCODERS))
    @pytest.mark.parametrize("stream", [False, True])
    def test_gzip_and_deflate_bodies_are_decoded(self, server, encoding, stream):
        body = json_lines()
        coding, encode = ENCODERS[encoding]
        encoded = encode(body)
        assert len(encoded) > 4096 and encoded != body
        server.handler = lambda request: Reply(
            200, encoded, {"Content-Encoding": coding, "Content-Type": "application/json"}
        )
        response = connect(server).request("GET", "/jobs", stream=stream)
        if stream:
            pieces = list(response.iter_content(1024))
            assert len(pieces) > 1
            assert b"".join(pieces) == body
        else:
            assert response.content == body
            assert response.json()[-1] == {"index": 4999, "value": f"v{4999**2}"}
        assert server.requests[0].headers["accept-encoding"] == "gzip, deflate"

    @pytest.mark.parametrize(
        "trailers, extension",
        [(b"", b""), (b"X-Checksum: abc\r\nX-Count: 4\r\n", b""), (b"", b";name=value")],
        ids=["plain", "trailers", "extension"],
    )
    @pytest.mark.parametrize("stream", [False, True])
    def test_chunked_bodies_are_read_whole(self, server, trailers, extension, stream):
        pieces = [b'{"parts": [', b"1, 2, 3", b'], "blob": "', b"q" * 70000, b'"}']
        body = b"".join(pieces)
        head = raw_head("200 OK", [("Content-Type", "application/json")])
        head = head.replace(b"\r\n\r\n", b"\r\nTransfer-Encoding: chunked\r\n\r\n")

        def handler(request):
            if request.path == "/chunked":
                return head + chunked(pieces, trailers, extension)
            return Reply(200, b"after")

        server.handler = handler
        connection = connect(server)
        response = connection.request("GET", "/chunked", stream=stream, timeout=(5, 2))
        if stream:
            assert b"".join(response.iter_content(7000)) == body
        else:
            assert response.content == body
            assert response.json()["parts"] == [1, 2, 3]
        # The framing was consumed exactly, trailers included: the socket carries the next one.
        assert connection.request("GET", "/next", timeout=(5, 2)).content == b"after"
        assert [request.connection for request in server.requests] == [1, 1]

    @pytest.mark.parametrize(
        "method, reply, length",
        [
            ("HEAD", Reply(200, b"x" * 100), "100"),
            ("HEAD", raw_head("200 OK", [("Content-Length", 1000)]), "1000"),
            ("GET", raw_head("204 No Content"), None),
            ("GET", Reply(204), "0"),
            ("GET", raw_head("304 Not Modified", [("ETag", '"v1"')]), None),
            ("GET", raw_head("304 Not Modified", [("Content-Length", 1000)]), "1000"),
        ],
        ids=["HEAD", "HEAD-raw", "204-without-length", "204", "304", "304-with-length"],
    )
    def test_head_204_and_304_have_no_body_and_their_socket_carries_no_other_request(
        self, server, method, reply, length
    ):
        server.handler = lambda request: reply if request.path == "/empty" else Reply(200, b"{}")
        connection = connect(server)
        for _ in range(3):
            # A client waiting for a body here would time out: none is coming.
            response = connection.request(method, "/empty", timeout=(5, 1))
            assert response.content == b""
            assert response.text == ""
            assert response.headers.get("Content-Length") == length
            assert connection.request("GET", "/full", timeout=(5, 1)).json() == {}
        assert len(server.requests) == 6
        # A body that a buggy server sends on these a few milliseconds late would be read as
        # the next answer: their socket is closed, whatever they announce.
        requests = server.requests
        for index, request in enumerate(requests):
            if request.path == "/empty":
                later = {other.connection for other in requests[index + 1 :]}
                assert request.connection not in later, requests

    @pytest.mark.parametrize(
        "interim",
        [
            b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n",
            b"HTTP/1.1 100 Continue\r\n\r\n",
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.js>\r\n\r\n",
        ],
        ids=["103", "100", "100-then-103"],
    )
    def test_interim_1xx_responses_are_skipped(self, server, interim):
        final = raw_response(b'{"ok": true}', headers=[("X-Final", "yes")])
        server.handler = lambda request: interim + final
        response = connect(server).request("GET", "/", timeout=(5, 2))
        assert response.status_code == 200
        assert response.reason == "OK"
        assert response.headers["X-Final"] == "yes"
        assert "Link" not in response.headers
        assert response.json() == {"ok": True}

    @pytest.mark.parametrize("encoding", sorted(ENCODERS))
    @pytest.mark.parametrize("size", [1, 2])
    def test_compressed_bodies_are_decoded_in_pieces_of_one_or_two_bytes(
        self, server, encoding, size
    ):
        body = json_lines(50)
        coding, encode = ENCODERS[encoding]
        server.handler = lambda request: Reply(200, encode(body), {"Content-Encoding": coding})
        response = connect(server).request("GET", "/jobs", stream=True)
        assert b"".join(response.iter_content(size)) == body

    def test_a_chunked_stream_yields_each_chunk_as_it_arrives(self, servers):
        received = threading.Event()

        def reply(sock):
            sock.sendall(raw_head("200 OK", [("Transfer-Encoding", "chunked")]) + b"5\r\nfirst\r\n")
            received.wait(5)  # the next chunk comes once the client has the first one
            sock.sendall(b"6\r\nsecond\r\n0\r\n\r\n")

        raw = fault_server(servers, reply, hold=True)
        try:
            response = connect(raw).request("GET", "/jobs/1/log", stream=True, timeout=(5, 1))
            pieces = response.iter_content(1024)
            # A client that waited for 1024 bytes would time out here.
            first = next(pieces)
            received.set()
            assert first == b"first"
            assert list(pieces) == [b"second"]
        finally:
            received.set()

    @pytest.mark.parametrize("stream", [False, True])
    def test_iter_content_takes_a_chunk_size_beyond_any_body(self, server, stream):
        body = b"hello" * 1000
        server.handler = lambda request: Reply(200, gzip.compress(body), {"Content-Encoding": "gzip"})
        response = connect(server).request("GET", "/jobs", stream=stream)
        assert b"".join(response.iter_content(2**63)) == body

    def test_a_long_streamed_error_body_is_read_only_as_far_as_its_message_needs(self, servers):
        # 100 KiB of detail: past the 64 KiB read to word the error, so requests' wording.
        body = json.dumps({"detail": "x" * 102400}).encode()
        reply = raw_response(gzip.compress(body), "500 Internal Server Error",
                             [("Content-Encoding", "gzip")])  # fmt: skip
        server = servers.paths({"/jobs": reply})
        with pytest.raises(xcc.HTTPError, match=r"^500 Server Error: Internal Server Error"):
            connect(server).request("GET", "/jobs", stream=True)

    def test_a_token_echoed_in_a_long_streamed_error_body_is_masked(self, servers):
        body = json.dumps({"detail": ACCESS_TOKEN + "x" * 102400}).encode()
        server = servers.paths({"/jobs": raw_response(body, "500 Internal Server Error")})
        with pytest.raises(xcc.HTTPError) as info:
            connect(server).request("GET", "/jobs", stream=True)
        shown = b"".join(info.value.response.iter_content(1000))
        assert shown == body.replace(ACCESS_TOKEN.encode(), b"[token]")

    def test_the_rest_of_a_long_streamed_error_body_stays_for_the_caller(self, servers):
        body = json.dumps({"detail": "x" * 102400}).encode()
        server = servers.paths({"/jobs": raw_response(body, "500 Internal Server Error")})
        with pytest.raises(xcc.HTTPError) as info:
            connect(server).request("GET", "/jobs", stream=True)
        pieces = list(info.value.response.iter_content(1000))
        assert b"".join(pieces) == body
        assert max(map(len, pieces)) == 1000

    def test_a_short_streamed_error_body_gives_its_detail_and_its_content(self, servers):
        body = json.dumps({"detail": "No such job."}).encode()
        server = servers.paths({"/jobs": raw_response(body, "404 Not Found")})
        with pytest.raises(xcc.HTTPError, match=r"^No such job\.$") as info:
            connect(server).request("GET", "/jobs", stream=True)
        assert info.value.response.content == body

    def test_an_endless_streamed_error_body_still_raises(self, servers):
        def endless(sock):
            sock.sendall(raw_head("500 Internal Server Error", [("Transfer-Encoding", "chunked")]))
            with contextlib.suppress(OSError):
                for _ in range(100000):  # 1 GB at most: the test fails long before
                    sock.sendall(b"2710\r\n" + b"x" * 10000 + b"\r\n")

        raw = fault_server(servers, endless)
        with pytest.raises(xcc.HTTPError, match=r"^500 Server Error") as info:
            connect(raw).request("GET", "/jobs", stream=True, timeout=5)
        info.value.response.close()

    def test_a_streamed_gzip_bomb_error_body_is_not_decoded_whole(self, servers):
        bomb = raw_response(gzip_bomb(256 << 20), "500 Internal Server Error",
                            [("Content-Encoding", "gzip")])  # fmt: skip
        server = servers.paths({"/bomb": bomb})
        code, out, err = run_python(["-c", ERROR_BOMB_CLIENT, HERE, str(server.port)])
        assert code == 0, err
        message, growth = out.rsplit(" ", 1)
        assert message.startswith("500 Server Error: Internal Server Error")
        assert int(growth) <= 32, f"peak RSS grew by {growth} MiB to word the error"


# ---------------------------------------------------------------------------- exceptions


class TestExceptions:
    @pytest.mark.parametrize(
        "cls, bases",
        [
            (xcc.RequestException, (OSError,)),
            (xcc.HTTPError, (xcc.RequestException,)),
            (xcc.ConnectionError, (xcc.RequestException,)),
            (xcc.Timeout, (xcc.RequestException,)),
            (xcc.ConnectTimeout, (xcc.ConnectionError, xcc.Timeout)),
            (xcc.ReadTimeout, (xcc.Timeout,)),
            (xcc.SSLError, (xcc.ConnectionError,)),
            (xcc.ProxyError, (xcc.ConnectionError,)),
            (xcc.TooManyRedirects, (xcc.RequestException,)),
        ],
    )
    def test_hierarchy_matches_requests(self, cls, bases):
        assert all(issubclass(cls, base) for base in bases)

    def test_exceptions_carry_message_and_response(self):
        error = xcc.HTTPError("Not found", response="response")
        assert str(error) == "Not found"
        assert error.response == "response"
        assert xcc.ConnectionError("x").response is None

    def test_every_name_in_all_exists_and_version_is_a_string(self):
        for name in xcc.__all__:
            assert hasattr(xcc, name)
        assert isinstance(xcc.__version__, str)


# ------------------------------------------------------- checking and encoding a request

# The proxy variables: (environment, schemes asked for, what _environ_proxies returns).
PROXY_VARIABLES = [
    ({"HTTPS_PROXY": "http://a:1"}, ("https",), {"https": "http://a:1"}),
    ({"https_proxy": "http://b:1"}, ("https",), {"https": "http://b:1"}),
    ({"HTTPS_PROXY": "http://a:1", "https_proxy": "http://b:1"}, ("https",),
     {"https": "http://b:1"}),
    ({"HTTPS_PROXY": "http://a:1", "https_proxy": ""}, ("https",), {}),
    ({"HTTPS_PROXY": ""}, ("https",), {}),
    ({"HTTP_PROXY": "http://a:1"}, ("http", "https"), {"http": "http://a:1"}),
    ({"HTTP_PROXY": "http://a:1", "REQUEST_METHOD": "GET"}, ("http",), {}),
    ({"http_proxy": "http://b:1", "REQUEST_METHOD": "GET"}, ("http",),
     {"http": "http://b:1"}),
    ({"HTTPS_PROXY": "http://a:1", "REQUEST_METHOD": "POST"}, ("https",),
     {"https": "http://a:1"}),
    ({"ALL_PROXY": "http://c:1"}, ("https", "all"), {"all": "http://c:1"}),
    ({"all_proxy": "http://d:1", "ALL_PROXY": "http://c:1"}, ("all",),
     {"all": "http://d:1"}),
    ({"ALL_PROXY": "http://c:1", "HTTPS_PROXY": "http://a:1"}, ("https", "all"),
     {"https": "http://a:1", "all": "http://c:1"}),
    ({"NO_PROXY": "example.com"}, ("no",), {"no": "example.com"}),
    ({"NO_PROXY": "a.example", "no_proxy": "b.example"}, ("no",), {"no": "b.example"}),
    ({"HTTP_PROXY": "http://a:1", "HTTPS_PROXY": "http://b:1"}, ("https",),
     {"https": "http://b:1"}),
    ({}, ("http", "https", "all", "no"), {}),
]  # fmt: skip

# NO_PROXY: (host, port, NO_PROXY value, whether the host bypasses the proxy).
NO_PROXY_MATCHES = [
    # *
    ("example.com", 443, "*", True),
    ("10.1.2.3", 443, "*", True),
    ("example.com", 443, "other.org, *", True),
    # the host itself
    ("example.com", 443, "example.com", True),
    ("example.com", 443, "example.org", False),
    ("example.com", 443, "", False),
    # subdomains, with or without a leading dot, never a mere suffix
    ("a.corp.example.com", 443, "corp.example.com", True),
    ("a.corp.example.com", 443, ".corp.example.com", True),
    ("x.y.corp.example.com", 443, "corp.example.com", True),
    ("corp.example.com", 443, ".corp.example.com", True),
    ("badexample.com", 443, "example.com", False),
    ("badexample.com", 443, ".example.com", False),
    ("example.com.evil.net", 443, "example.com", False),
    ("example.com.evil.net", 443, ".example.com", False),
    ("example.com", 443, "a.example.com", False),
    ("xcorp.example.com", 443, "corp.example.com", False),
    # case
    ("Example.COM", 443, "example.com", True),
    ("a.example.com", 443, ".EXAMPLE.Com", True),
    ("A.Example.Com", 443, "EXAMPLE.COM", True),
    # whitespace and empty entries
    ("example.com", 443, "  example.com  ", True),
    ("example.com", 443, "other.org ,\texample.com\t, more.net", True),
    ("example.com", 443, ",,", False),
    ("example.com", 443, " , ,", False),
    ("example.com", 443, ",, example.com,", True),
    # ports
    ("example.com", 8080, "example.com:8080", True),
    ("example.com", 443, "example.com:8080", False),
    ("a.example.com", 8080, ".example.com:8080", True),
    ("a.example.com", 8081, ".example.com:8080", False),
    ("example.com", 443, "example.com:443", True),
    ("example.com", 443, "example.com:https", False),
    # IPv4 literals and CIDR ranges
    ("10.1.2.3", 443, "10.1.2.3", True),
    ("10.1.2.4", 443, "10.1.2.3", False),
    ("10.1.2.3", 443, "10.0.0.0/8", True),
    ("11.0.0.1", 443, "10.0.0.0/8", False),
    ("192.168.1.77", 443, "192.168.1.0/24", True),
    ("192.168.2.1", 443, "192.168.1.0/24", False),
    ("127.0.0.1", 8080, "127.0.0.1:8080", True),
    ("127.0.0.1", 443, "127.0.0.1:8080", False),
    ("110.1.2.3", 443, "10.1.2.3", False),
    # IPv6 literals and CIDR ranges
    ("::1", 443, "::1", True),
    ("::1", 443, "::2", False),
    ("0:0:0:0:0:0:0:1", 443, "::1", True),
    ("::1", 8080, "[::1]:8080", True),
    ("::1", 443, "[::1]:8080", False),
    ("::1", 443, "[::1]", True),
    ("fd12:3456::1", 443, "fd00::/8", True),
    ("fe80::1", 443, "fd00::/8", False),
    ("fe80::1", 443, "fe80:0:0::1", True),
    ("FD00::ABCD", 443, "fd00::/8", True),
    ("10.1.2.3", 443, "fd00::/8", False),
    ("::1", 443, "10.0.0.0/8", False),
    # a host name is never matched by an IP entry: no DNS look-up is made
    ("localhost", 443, "127.0.0.1", False),
    ("localhost", 443, "127.0.0.0/8", False),
    ("localhost", 443, "::1", False),
    ("nothing.invalid", 443, "10.0.0.0/8, ::/0, 0.0.0.0/0", False),
    ("127.0.0.1", 443, "localhost", False),
    # a *.example.com entry
    ("a.example.com", 443, "*.example.com", True),
    ("a.b.example.com", 443, "*.example.com", True),
    ("badexample.com", 443, "*.example.com", False),
    ("example.com.evil.net", 443, "*.example.com", False),
]


class TestHelpers:
    """The small pure helpers, pinned down by tables."""

    @pytest.mark.parametrize(
        "token",
        ["abc", "eyJhbGciOi.eyJzdWIi.c2ln", "a-b_c.d", "0123456789" * 100, " abc", "ab c", "ab=",
         "a+b/c", "é", "a,b;c", '"abc"', "Xanadu Cloud API key goes here"],
    )  # fmt: skip
    def test_check_token_accepts_what_a_header_can_carry(self, token):
        assert xcc._check_token("access token", token) == token

    def test_check_token_reads_an_empty_token_as_none(self):
        assert xcc._check_token("access token", "") is None

    @pytest.mark.parametrize(
        "token", ["abc\n", "a\rb", "a\tb", "a\x00b", "a\x7fb", "a\x1bb", "a\u20acb", "\U0001f511"]
    )
    def test_check_token_refuses_what_a_header_cannot_carry_without_echoing_it(self, token):
        with pytest.raises(ValueError, match="^The refresh token cannot be sent in a header") as info:
            xcc._check_token("refresh token", token)
        assert token.strip() not in str(info.value)

    def test_mask_follows_causes_and_contexts_and_keeps_other_arguments(self):
        cause, context = ValueError("cause " + ACCESS_TOKEN), KeyError("context " + ACCESS_TOKEN)
        error = xcc.ConnectionError(f"failed {ACCESS_TOKEN}")
        error.__cause__, error.__context__ = cause, context
        context.__context__ = system = OSError(104, "reset " + ACCESS_TOKEN)
        system.__context__ = error  # a cycle ends
        xcc._mask_error(error, (None, ACCESS_TOKEN))
        assert [e.args for e in (error, cause, context, system)] == [
            ("failed [token]",),
            ("cause [token]",),
            ("context [token]",),
            (104, "reset [token]"),
        ]

    def test_check_token_refuses_non_strings(self):
        with pytest.raises(TypeError, match="access token"):
            xcc._check_token("access token", b"abc")

    @pytest.mark.parametrize(
        "token, expiry",
        [
            (make_jwt(1700000000), 1700000000),
            (make_jwt(1.5), 1.5),
            ("opaque-token", None),
            ("a.b", None),  # payload is not base64 JSON
            ("a." + base64.urlsafe_b64encode(b'{"sub": "x"}').decode().rstrip("=") + ".c", None),
            ("a." + base64.urlsafe_b64encode(b'{"exp": "soon"}').decode().rstrip("=") + ".c", None),
            ("a." + base64.urlsafe_b64encode(b'{"exp": true}').decode().rstrip("=") + ".c", None),
            ("a." + base64.urlsafe_b64encode(b"[1, 2]").decode().rstrip("=") + ".c", None),
        ],
    )
    def test_jwt_expiry_reads_exp_or_gives_none(self, token, expiry):
        assert xcc._jwt_expiry(token) == expiry

    @pytest.mark.parametrize(
        "timeout, pair",
        [(10, (10, 10)), (0.5, (0.5, 0.5)), (None, (None, None)), ((1, 2), (1, 2)),
         ((None, 3), (None, 3))],
    )  # fmt: skip
    def test_check_timeout_accepts_seconds_pairs_and_none(self, timeout, pair):
        assert xcc._check_timeout(timeout) == pair

    @pytest.mark.parametrize("timeout", [0, -1, "10", True, (1, 2, 3), (1, "x"), float("nan")])
    def test_check_timeout_refuses_anything_else(self, timeout):
        with pytest.raises(ValueError, match="timeout"):
            xcc._check_timeout(timeout)

    @pytest.mark.parametrize(
        "old, new, strip",
        [
            (("http", "h.example", 80), ("https", "h.example", 443), False),  # the upgrade
            (("https", "h.example", 443), ("https", "h.example", 443), False),
            (("http", "h.example", 8080), ("http", "h.example", 8080), False),
            (("https", "h.example", 443), ("http", "h.example", 80), True),  # a downgrade
            (("http", "h.example", 8080), ("https", "h.example", 443), True),
            (("http", "h.example", 80), ("https", "h.example", 8443), True),
            (("http", "h.example", 8080), ("https", "h.example", 8443), True),
            (("http", "h.example", 80), ("https", "other.example", 443), True),
            (("https", "h.example", 443), ("https", "other.example", 443), True),
            (("https", "h.example", 443), ("https", "sub.h.example", 443), True),
            (("https", "h.example", 443), ("https", "h.example", 8443), True),
            (("http", "h.example", 80), ("http", "h.example", 8080), True),
        ],
    )
    def test_should_strip_auth_compares_scheme_host_and_effective_port(self, old, new, strip):
        assert xcc._should_strip_auth(old, new) is strip

    @pytest.mark.parametrize(
        "one, other",
        [
            ("https://h.example/a", "https://h.example:443/b"),
            ("http://h.example/a", "http://h.example:80/b"),
            ("https://H.Example/a", "https://h.example/b"),
        ],
    )
    def test_default_port_and_host_case_make_one_origin_that_keeps_credentials(self, one, other):
        assert xcc._split_url(one)[0] == xcc._split_url(other)[0]
        assert xcc._should_strip_auth(xcc._split_url(one)[0], xcc._split_url(other)[0]) is False

    @pytest.mark.parametrize("environ, schemes, expected", PROXY_VARIABLES)
    def test_proxy_variables_are_read_in_either_case_lower_case_winning(
        self, environ, schemes, expected
    ):
        found = xcc._environ_proxies(environ, schemes)
        assert {scheme: url for scheme, (name, url) in found.items()} == expected
        assert all(environ[name] == url for name, url in found.values())

    @pytest.mark.parametrize("environ, schemes, expected", PROXY_VARIABLES)
    def test_proxy_variables_are_read_as_urllib_reads_them(
        self, monkeypatch, environ, schemes, expected
    ):
        for name, value in environ.items():
            monkeypatch.setenv(name, value)
        from_urllib = urllib.request.getproxies_environment()
        found = xcc._environ_proxies(os.environ, schemes)
        assert {scheme: from_urllib[scheme] for scheme in schemes if scheme in from_urllib} == (
            {scheme: url for scheme, (name, url) in found.items()}
        )

    @pytest.mark.parametrize("host, port, no_proxy, expected", NO_PROXY_MATCHES)
    def test_no_proxy_matches_hosts_subdomains_ports_and_ip_ranges_without_dns(
        self, host, port, no_proxy, expected
    ):
        assert (xcc._bypass_proxy(host, port, no_proxy) is not None) is expected

    @pytest.mark.parametrize(
        "meta, messages",
        [
            ({"_schema": ["Foo", "Bar"], "size": ["Baz"]}, ["Foo", "Bar", "Baz"]),
            (
                {"head": {"0": ["Foo", "Bar"]}, "tail": {"0": ["Baz"], "1": ["Bud"]}},
                ["Foo", "Bar", "Baz", "Bud"],
            ),
            ({"name": "Not a list"}, ["Not a list"]),
        ],
    )
    def test_validation_messages_flatten_lists_and_mappings(self, meta, messages):
        assert xcc._validation_messages(meta) == messages

    @pytest.mark.parametrize("host", ["evil x", "a\x0bb", "a\x00b", "a\x0cb", "a\x7fb", "evil%20x"])
    def test_a_url_host_is_checked_as_the_constructor_checks_host(self, host):
        with pytest.raises(ValueError, match="host"):
            xcc.Connection(access_token=ACCESS_TOKEN, host=host)
        with pytest.raises(ValueError, match="host"):
            xcc._split_url(f"https://{host}:1/next")


# ----------------------------------------------------------------- Connection: injection

MARK = "S3CR3T"  # in bad header values: no error message may repeat it
BAD_METHODS = [
    "GET /x", "", "GE T", "GET\r\n", "GET\n", "G\x00ET", "GET\t", "GÉT", "GET:", "GET\x7f",
    "(GET)", "GET\r\nX-Injected: 1",
]  # fmt: skip
BAD_PATHS = [
    "/a\r\nHost: evil.example", "/a\nb", "/a\rb", "/a\x00b", "/a\x7fb", "/a\x1bb", "/a\tb",
    "/a\x0bb", "/x HTTP/1.1\r\n\r\nGET /smuggled",
]  # fmt: skip
BAD_HEADER_NAMES = [
    "X-A\r\nX-B", "X-A\n", "\rX-A", "X A", "X:A", "X-A:", "X-É", "X-日本", "", "X\x00",
    "X\tA", "X-A ", "(X)", "X@Y", "X\x7f",
]  # fmt: skip
BAD_HEADER_VALUES = [
    MARK + "\r\nX-Injected: 1", MARK + "\n", MARK + "\r", MARK + "\x00", MARK + "\x7f",
    MARK + "\x1b", MARK + "\x0b", MARK + "\x0c", MARK + "\x1f", MARK + "€", MARK + "日本",
    MARK + "\u2028", MARK + "\U0001F600", (MARK + "\r\nX-Injected: 1").encode("latin-1"),
]  # fmt: skip
TRANSFER_ENCODINGS = [{"Transfer-Encoding": "chunked"}, {"transfer-encoding": "gzip, chunked"}]


class TestInjection:
    @pytest.mark.parametrize("method", BAD_METHODS)
    def test_method_that_is_not_a_token_is_refused(self, server, method):
        refused_before_sending(server, ValueError, lambda: connect(server).request(method, "/"))

    @pytest.mark.parametrize("method", [None, b"GET", 1])
    def test_method_of_wrong_type_is_refused(self, server, method):
        refused_before_sending(server, TypeError, lambda: connect(server).request(method, "/"))

    @pytest.mark.parametrize("path", BAD_PATHS)
    def test_path_with_control_characters_is_refused(self, server, path):
        refused_before_sending(server, ValueError, lambda: connect(server).request("GET", path))

    @pytest.mark.parametrize("path", [None, b"/x", 1])
    def test_path_of_wrong_type_is_refused(self, server, path):
        refused_before_sending(server, TypeError, lambda: connect(server).request("GET", path))

    @pytest.mark.parametrize("name", BAD_HEADER_NAMES)
    def test_bad_header_name_is_refused_per_request_and_at_construction(self, server, name):
        call = lambda: connect(server).request("GET", "/", headers={name: "v"})
        refused_before_sending(server, ValueError, call)
        with pytest.raises(ValueError):
            connect(server, headers={name: "v"})

    @pytest.mark.parametrize("value", BAD_HEADER_VALUES)
    def test_bad_header_value_is_refused_without_echoing_it(self, server, value):
        call = lambda: connect(server).request("GET", "/", headers={"X-Bad": value})
        error = refused_before_sending(server, ValueError, call)
        assert MARK not in str(error) and MARK not in repr(error)
        with pytest.raises(ValueError) as info:
            connect(server, headers={"X-Bad": value})
        assert MARK not in str(info.value) and MARK not in repr(info.value)

    @pytest.mark.parametrize(
        "headers", [{1: "v"}, {None: "v"}, {"X-A": 5}, {"X-A": ["v"]}, {1: None}, {None: None}]
    )
    def test_header_of_wrong_type_is_refused(self, server, headers):
        call = lambda: connect(server).request("GET", "/", headers=headers)
        refused_before_sending(server, TypeError, call)
        with pytest.raises(TypeError):
            connect(server, headers=headers)

    @pytest.mark.parametrize("headers", TRANSFER_ENCODINGS)
    def test_transfer_encoding_header_is_refused(self, server, headers):
        call = lambda: connect(server).request("POST", "/", headers=headers, data=b"x")
        refused_before_sending(server, ValueError, call)
        with pytest.raises(ValueError):
            connect(server, headers=headers)

    def test_caller_content_length_is_replaced_by_the_real_one(self, server):
        connect(server).request("POST", "/", headers={"Content-Length": "999"}, data=b"abc")
        (request,) = server.requests
        assert request.header_values("Content-Length") == ["3"]
        assert request.body == b"abc"

    def test_string_params_with_control_characters_are_refused(self, server):
        call = lambda: connect(server).request("GET", "/", params="a=1\r\nX-Injected: 1")
        refused_before_sending(server, ValueError, call)

    @pytest.mark.parametrize(
        "path, target",
        [
            ("/a b", "/a%20b"),
            ("/é", "/%C3%A9"),
            ("/日本", "/%E6%97%A5%E6%9C%AC"),
            ("/%41", "/%41"),
            ("/%e9", "/%e9"),
            ("/a%20b", "/a%20b"),
            ("/a%2", "/a%252"),
            ("/a%2Fb", "/a%2Fb"),
            ("/%zz", "/%25zz"),
            ("/100%", "/100%25"),
            ("/a?a=b c", "/a?a=b%20c"),
            ("/x?q=a b&r=é", "/x?q=a%20b&r=%C3%A9"),
            ("/a?b=%zz", "/a?b=%25zz"),
            ("/ä?ö=ü", "/%C3%A4?%C3%B6=%C3%BC"),
            ("/a#x", "/a"),
            ("/a?b=1#x y", "/a?b=1"),
            ('/a"b<c>d', "/a%22b%3Cc%3Ed"),
            ("/{x}|^`\\", "/%7Bx%7D%7C%5E%60%5C"),
            ("/~user/x-y_z.json", "/~user/x-y_z.json"),
            ("/!$&'()*+,;=:@[]", "/!$&'()*+,;=:@[]"),
            ("jobs", "/jobs"),
        ],
    )
    def test_path_is_percent_encoded_as_requests_does(self, server, path, target):
        connect(server).request("GET", path)
        assert [request.target for request in server.requests] == [target]

    @pytest.mark.parametrize(
        "path, target",
        [
            ("//evil.example/x", "/evil.example/x"),
            ("///evil.example/x", "/evil.example/x"),
            ("http://evil.example/x", "/http://evil.example/x"),
            ("@evil.example/x", "/@evil.example/x"),
        ],
    )
    def test_path_never_changes_the_host(self, server, path, target):
        connection = connect(server)
        assert connection.url(path) == f"http://127.0.0.1:{server.port}{target}"
        connection.request("GET", path)
        (request,) = server.requests
        assert request.target == target
        assert request.headers["host"] == f"127.0.0.1:{server.port}"

    class Scope(str, enum.Enum):  # a str Enum: str() of a member is its name
        ALL = "all jobs"

    @pytest.mark.parametrize(
        "path, params, target",
        [
            ("/p", {"a": None, "b": "1"}, "/p?b=1"),
            ("/p", {"id": ["a", "b"]}, "/p?id=a&id=b"),
            ("/p", {"id": ("a", "b")}, "/p?id=a&id=b"),
            ("/p", {"id": ["a", None, "b"]}, "/p?id=a&id=b"),
            ("/p", {"id": ("a", None, "b")}, "/p?id=a&id=b"),
            ("/p", [("a", "1"), ("a", "2")], "/p?a=1&a=2"),
            ("/p", {"b": b"x y"}, "/p?b=x+y"),
            ("/p", {"q": b"\xff"}, "/p?q=%FF"),
            ("/p", {"n": 5, "f": 1.5, "t": True}, "/p?n=5&f=1.5&t=True"),
            ("/p", {"u": "é"}, "/p?u=%C3%A9"),
            ("/p", {"日本": "語"}, "/p?%E6%97%A5%E6%9C%AC=%E8%AA%9E"),
            ("/p", {"s": "a b"}, "/p?s=a+b"),
            ("/p", {"t": "a~b", "~": b"~"}, "/p?t=a~b&~=~"),  # unreserved, on 3.6 too
            ("/p", {Scope.ALL: [Scope.ALL]}, "/p?all+jobs=all+jobs"),  # the value, not the name
            ("/p", {"k y": "v"}, "/p?k+y=v"),
            ("/p", {"q": "a&b=c"}, "/p?q=a%26b%3Dc"),
            ("/p", {"p": "/+?#%"}, "/p?p=%2F%2B%3F%23%25"),
            ("/p", {"a": []}, "/p"),
            ("/p", {}, "/p"),
            ("/p", {"a": ""}, "/p?a="),
            ("/p", "a=1&b=2", "/p?a=1&b=2"),
            ("/jobs?x=1", {"y": "2"}, "/jobs?x=1&y=2"),
            ("/jobs?", {"y": "2"}, "/jobs?y=2"),
        ],
    )
    def test_params_are_encoded_as_requests_encodes_them(self, server, path, params, target):
        connect(server).request("GET", path, params=params)
        assert [request.target for request in server.requests] == [target]

    @pytest.mark.parametrize(
        "data, body, content_type",
        [
            (
                {"a": "1", "b": None, "c": ["x", "y"], "d": "é &="},
                b"a=1&c=x&c=y&d=%C3%A9+%26%3D",
                "application/x-www-form-urlencoded",
            ),
            ([("k", "v"), ("k", "w")], b"k=v&k=w", "application/x-www-form-urlencoded"),
            (b"raw\r\nbytes", b"raw\r\nbytes", None),
            ("é", b"\xc3\xa9", None),
        ],
    )
    def test_data_is_encoded_with_its_content_type(self, server, data, body, content_type):
        connect(server).request("POST", "/form", data=data)
        (request,) = server.requests
        assert request.body == body
        assert request.header_values("Content-Length") == [str(len(body))]
        assert request.header_values("Content-Type") == ([content_type] if content_type else [])

    @pytest.mark.parametrize(
        "connection_headers, request_headers, content_type",
        [
            ({}, {}, "application/json"),
            ({}, {"Content-Type": "application/vnd.api+json"}, "application/vnd.api+json"),
            ({}, {"content-type": "text/plain"}, "text/plain"),
            ({"Content-Type": "application/x-custom"}, {}, "application/x-custom"),
        ],
    )
    def test_json_body_is_sent_with_application_json_unless_the_caller_set_a_type(
        self, server, connection_headers, request_headers, content_type
    ):
        payload = {"name": "é日本", "list": [1, 2.5, None, True], "nested": {"x": "y"}}
        connection = connect(server, headers=connection_headers)
        connection.request("POST", "/jobs", json=payload, headers=request_headers)
        (request,) = server.requests
        assert json.loads(request.body.decode("utf-8")) == payload
        assert request.header_values("Content-Type") == [content_type]

    @pytest.mark.parametrize(
        "payload", [float("nan"), float("inf"), -float("inf"), [1, {"x": float("nan")}]]
    )
    def test_json_with_nan_or_infinity_is_refused(self, server, payload):
        call = lambda: connect(server).request("POST", "/jobs", json=payload)
        refused_before_sending(server, ValueError, call)

    def test_json_nested_too_deep_is_refused(self, server):
        payload = []
        for _ in range(100000):
            payload = [payload]
        call = lambda: connect(server).request("POST", "/jobs", json=payload)
        error = refused_before_sending(server, ValueError, call)
        assert str(error) == "json is nested too deep to be serialised"

    @pytest.mark.parametrize(
        "method, content_length",
        [
            ("GET", []),
            ("HEAD", []),
            ("POST", ["0"]),
            ("PUT", ["0"]),
            ("PATCH", ["0"]),
            ("DELETE", ["0"]),
            ("OPTIONS", ["0"]),
        ],
    )
    def test_content_length_zero_only_on_bodiless_non_get_requests(
        self, server, method, content_length
    ):
        connect(server).request(method, "/")
        (request,) = server.requests
        assert request.method == method
        assert request.header_values("Content-Length") == content_length
        assert request.body == b""

    @pytest.mark.parametrize(
        "keyword, value",
        [("cert", ("a.pem", "a.key")), ("files", {"f": b"x"}), ("auth", ("u", "p")),
         ("hooks", {}), ("cookies", {"a": "b"})],
    )  # fmt: skip
    def test_unknown_keyword_raises_type_error_naming_it(self, server, keyword, value):
        call = lambda: connect(server).request("GET", "/", **{keyword: value})
        error = refused_before_sending(server, TypeError, call)
        assert keyword in str(error)

    def test_netrc_is_never_consulted(self, servers, clean_environment):
        netrc = clean_environment / ".netrc"
        netrc.write_text("machine 127.0.0.1 login netrc-user password netrc-password\n")
        os.chmod(str(netrc), 0o600)
        server = servers.http()
        connect(server).request("GET", "/")
        (request,) = server.requests
        assert request.header_values("Authorization") == ["Bearer " + ACCESS_TOKEN]


# -------------------------------------------------------------------- transport: proxies

# Proxy credentials; the password needs percent-encoding in a URL.
PROXY_USER = "user"
PROXY_PASSWORD = "p@ss:word"
PROXY_PASSWORD_IN_URL = "p%40ss%3Aword"
PROXY_AUTHORIZATION = "Basic " + base64.b64encode(b"user:p@ss:word").decode("ascii")


def dead_proxy_url():
    """Returns the URL of a proxy that refuses connections."""
    return f"http://127.0.0.1:{closed_port()}"


# Which proxy a request goes through: (scheme of the origin, environment variables,
# proxies= of the request, whether the proxy is used). In the values, {proxy} is the
# proxy's URL, {dead} the URL of a proxy that refuses connections, {port} the origin's port.
PROXY_SELECTION = [
    pytest.param("https", {"HTTPS_PROXY": "{proxy}"}, None, True, id="HTTPS_PROXY"),
    pytest.param("https", {"https_proxy": "{proxy}"}, None, True, id="https_proxy"),
    pytest.param("https", {"ALL_PROXY": "{proxy}"}, None, True, id="ALL_PROXY-https"),
    pytest.param("https", {"all_proxy": "{proxy}"}, None, True, id="all_proxy-https"),
    pytest.param("http", {"HTTP_PROXY": "{proxy}"}, None, True, id="HTTP_PROXY"),
    pytest.param("http", {"http_proxy": "{proxy}"}, None, True, id="http_proxy"),
    pytest.param("http", {"ALL_PROXY": "{proxy}"}, None, True, id="ALL_PROXY-http"),
    pytest.param("http", {"all_proxy": "{proxy}"}, None, True, id="all_proxy-http"),
    pytest.param("https", {"HTTPS_PROXY": "{dead}", "https_proxy": "{proxy}"}, None, True,
                 id="lower-case-wins-over-upper-case"),
    pytest.param("https", {"ALL_PROXY": "{dead}", "HTTPS_PROXY": "{proxy}"}, None, True,
                 id="scheme-variable-wins-over-ALL_PROXY"),
    pytest.param("https", {"HTTP_PROXY": "{proxy}"}, None, False, id="HTTP_PROXY-not-for-https"),
    pytest.param("http", {"REQUEST_METHOD": "GET", "HTTP_PROXY": "{proxy}"}, None, False,
                 id="CGI-ignores-HTTP_PROXY"),
    pytest.param("http", {"REQUEST_METHOD": "GET", "http_proxy": "{proxy}"}, None, True,
                 id="CGI-still-uses-http_proxy"),
    pytest.param("https", {"HTTPS_PROXY": "{dead}"}, {"https": "{proxy}"}, True,
                 id="proxies-override-the-environment"),
    pytest.param("https", {"HTTPS_PROXY": "{proxy}"}, {"https": None}, False,
                 id="proxies-None-disables-the-environment"),
] + [
    pytest.param("https", {"HTTPS_PROXY": "{proxy}", variable: value}, None, False,
                 id=f"{variable}={value}-bypasses")
    for variable, value in [
        ("NO_PROXY", "127.0.0.1"), ("NO_PROXY", "*"), ("NO_PROXY", "127.0.0.0/8"),
        ("NO_PROXY", "127.0.0.1:{port}"), ("NO_PROXY", "example.com, 127.0.0.1 "),
        ("no_proxy", "127.0.0.1"),
    ]
] + [
    pytest.param("https", {"HTTPS_PROXY": "{proxy}", "NO_PROXY": value}, None, True,
                 id=f"NO_PROXY={value}-does-not-bypass")
    for value in ["127.0.0.2", "127.0.0.1:1", "localhost"]
]  # fmt: skip


class TestProxies:
    """HTTP proxies over real sockets: CONNECT tunnels, absolute-form requests, Basic
    credentials, errors, the proxy environment variables and NO_PROXY."""

    @pytest.fixture
    def origin(self, tls_server):
        """The HTTPS server that the proxy leads to."""
        return tls_server

    # -- HTTPS through a CONNECT tunnel

    def test_https_goes_through_connect_with_host_and_basic_credentials(
        self, origin, servers, certificates
    ):
        proxy = servers.proxy(credentials=(PROXY_USER, PROXY_PASSWORD))
        with connect(origin) as connection:
            response = connection.request(
                "GET",
                "/devices",
                verify=certificates["ca"],
                proxies={"https": proxy.url(PROXY_USER, PROXY_PASSWORD)},
            )
        assert response.status_code == 200
        authority = f"127.0.0.1:{origin.port}"
        assert [r.request_line for r in proxy.requests] == [f"CONNECT {authority} HTTP/1.1"]
        headers = proxy.requests[0].headers
        assert headers["host"] == authority
        assert headers["proxy-authorization"] == PROXY_AUTHORIZATION
        assert [(r.method, r.path) for r in origin.requests] == [("GET", "/devices")]
        assert origin.requests[0].headers["authorization"] == f"Bearer {ACCESS_TOKEN}"

    def test_origin_never_receives_proxy_authorization(self, origin, servers, certificates):
        proxy = servers.proxy(credentials=(PROXY_USER, PROXY_PASSWORD))
        with connect(origin) as connection:
            connection.request(
                "POST",
                "/jobs",
                json={"name": "job"},
                verify=certificates["ca"],
                proxies={"https": proxy.url(PROXY_USER, PROXY_PASSWORD)},
            )
        assert len(origin.requests) == 1
        assert "proxy-authorization" not in origin.requests[0].headers
        assert all(PROXY_AUTHORIZATION not in value for _, value in origin.requests[0].raw_headers)
        assert origin.requests[0].body == b'{"name": "job"}'

    def test_tunnel_is_reused_like_a_keep_alive_socket(self, origin, servers, certificates):
        proxy = servers.proxy(credentials=(PROXY_USER, PROXY_PASSWORD))
        with connect(origin) as connection:
            for index in range(4):
                connection.request(
                    "GET",
                    f"/jobs/{index}",
                    verify=certificates["ca"],
                    proxies={"https": proxy.url(PROXY_USER, PROXY_PASSWORD)},
                )
        assert [r.method for r in proxy.requests] == ["CONNECT"]
        assert [r.path for r in origin.requests] == ["/jobs/0", "/jobs/1", "/jobs/2", "/jobs/3"]
        assert {r.connection for r in origin.requests} == {1}
        assert origin.connections == 1

    def test_pooled_sockets_are_kept_apart_by_proxy(self, origin, servers, certificates):
        proxy = servers.proxy()
        with connect(origin) as connection:
            for proxies in (None, {"https": proxy.url()}, None, {"https": proxy.url()}):
                connection.request("GET", "/devices", verify=certificates["ca"], proxies=proxies)
        # One direct socket and one tunnel, each reused, never one for the other.
        assert [r.method for r in proxy.requests] == ["CONNECT"]
        assert origin.connections == 2
        assert [r.connection for r in origin.requests] == [1, 2, 1, 2]

    def test_wrong_ca_through_proxy_raises_ssl_error(self, origin, servers, certificates):
        proxy = servers.proxy(credentials=(PROXY_USER, PROXY_PASSWORD))
        with connect(origin) as connection, pytest.raises(xcc.SSLError) as info:
            connection.request(
                "GET",
                "/devices",
                verify=certificates["lax_ca"],
                proxies={"https": proxy.url(PROXY_USER, PROXY_PASSWORD)},
            )
        # One tunnel: no second, unverified handshake to read the certificate.
        assert [r.request_line for r in proxy.requests] == [
            f"CONNECT 127.0.0.1:{origin.port} HTTP/1.1"
        ]
        assert "the TLS certificate of '127.0.0.1' did not verify" in str(info.value)
        assert origin.requests == []
        assert_not_leaked(str(info.value), PROXY_PASSWORD, PROXY_PASSWORD_IN_URL, ACCESS_TOKEN)

    def test_certificate_is_checked_against_the_origin_name_not_the_proxy_name(
        self, servers, certificates
    ):
        cert, ca = certificates["localhost_cert"], certificates["ca"]
        origin = servers.http(tls=server_context(cert, certificates["localhost_key"]))
        proxy = servers.proxy(credentials=(PROXY_USER, PROXY_PASSWORD))
        # The origin is called "localhost", the name in its certificate; the proxy is not.
        with connect(origin, host="localhost") as connection:
            response = connection.request(
                "GET", "/ok", verify=ca, proxies={"https": proxy.url(PROXY_USER, PROXY_PASSWORD)}
            )
        assert response.status_code == 200
        assert proxy.requests[0].request_line == f"CONNECT localhost:{origin.port} HTTP/1.1"
        # The origin is called "127.0.0.1", which its certificate does not name, while the
        # proxy is called "localhost", which it does: the handshake must fail.
        with connect(origin, host="127.0.0.1") as connection, pytest.raises(xcc.SSLError):
            connection.request(
                "GET",
                "/bad",
                verify=ca,
                proxies={"https": proxy.url(PROXY_USER, PROXY_PASSWORD, "localhost")},
            )
        assert proxy.requests[1].request_line == f"CONNECT 127.0.0.1:{origin.port} HTTP/1.1"
        assert [r.path for r in origin.requests] == ["/ok"]

    # -- plain HTTP through the proxy

    def test_plain_http_uses_absolute_form_with_proxy_authorization(self, servers):
        origin = servers.http()
        proxy = servers.proxy(credentials=(PROXY_USER, PROXY_PASSWORD))
        with connect(origin) as connection:
            response = connection.request(
                "GET",
                "/jobs",
                params={"size": 2},
                proxies={"http": proxy.url(PROXY_USER, PROXY_PASSWORD)},
            )
        assert response.status_code == 200
        assert [r.request_line for r in proxy.requests] == [
            f"GET http://127.0.0.1:{origin.port}/jobs?size=2 HTTP/1.1"
        ]
        assert proxy.requests[0].headers["proxy-authorization"] == PROXY_AUTHORIZATION
        assert proxy.requests[0].headers["authorization"] == f"Bearer {ACCESS_TOKEN}"
        assert [(r.method, r.path, r.query) for r in origin.requests] == [
            ("GET", "/jobs", {"size": ["2"]})
        ]

    def test_plain_http_proxy_is_reused_for_several_requests(self, servers):
        origin = servers.http()
        proxy = servers.proxy()
        with connect(origin) as connection:
            for index in range(3):
                connection.request("GET", f"/n/{index}", proxies={"http": proxy.url()})
        assert [r.request_line for r in proxy.requests] == [
            f"GET http://127.0.0.1:{origin.port}/n/{index} HTTP/1.1" for index in range(3)
        ]
        assert proxy.connections == 1

    # -- proxy errors

    def test_407_on_connect_raises_proxy_error_naming_proxy_without_password(
        self, origin, servers, certificates
    ):
        proxy = servers.proxy(credentials=(PROXY_USER, PROXY_PASSWORD))
        url = proxy.url(PROXY_USER, "wr0ng@secret")
        with connect(origin) as connection, pytest.raises(xcc.ProxyError) as info:
            connection.request("GET", "/devices", verify=certificates["ca"], proxies={"https": url})
        message = str(info.value)
        assert f"127.0.0.1:{proxy.port}" in message
        assert "407" in message
        assert_not_leaked(message + repr(info.value), "wr0ng", ACCESS_TOKEN, REFRESH_TOKEN)
        assert isinstance(info.value, xcc.ConnectionError)
        assert len(proxy.requests) == 1 and proxy.requests[0].request_line.startswith("CONNECT ")
        assert origin.connections == 0

    def test_407_for_plain_http_raises_proxy_error_naming_proxy_without_password(self, servers):
        origin = servers.http()
        proxy = servers.proxy(credentials=(PROXY_USER, PROXY_PASSWORD))
        url = proxy.url(PROXY_USER, "wr0ng@secret")
        with connect(origin) as connection, pytest.raises(xcc.ProxyError) as info:
            connection.request("GET", "/devices", proxies={"http": url})
        message = str(info.value)
        assert f"127.0.0.1:{proxy.port}" in message
        assert "407" in message
        assert_not_leaked(message + repr(info.value), "wr0ng", ACCESS_TOKEN, REFRESH_TOKEN)
        assert origin.requests == []

    def test_refused_tunnel_raises_proxy_error_with_the_status(self, origin, servers, certificates):
        proxy = servers.proxy(refuse=403)
        with connect(origin) as connection, pytest.raises(xcc.ProxyError) as info:
            connection.request(
                "GET", "/devices", verify=certificates["ca"], proxies={"https": proxy.url()}
            )
        assert f"127.0.0.1:{proxy.port}" in str(info.value)
        assert "403" in str(info.value)
        assert origin.connections == 0

    @pytest.mark.parametrize("scheme", ["https", "socks5", "socks5h", "socks4"])
    def test_unsupported_proxy_scheme_raises_proxy_error_and_sends_nothing(
        self, origin, servers, certificates, scheme
    ):
        proxy = servers.proxy()
        url = f"{scheme}://{PROXY_USER}:{PROXY_PASSWORD_IN_URL}@127.0.0.1:{proxy.port}"
        with connect(origin) as connection, pytest.raises(xcc.ProxyError) as info:
            connection.request("GET", "/devices", verify=certificates["ca"], proxies={"https": url})
        assert "not supported" in str(info.value)
        assert_not_leaked(str(info.value), PROXY_PASSWORD, PROXY_PASSWORD_IN_URL)
        assert proxy.requests == [] and proxy.connections == 0
        assert origin.connections == 0 and origin.requests == []

    def test_unreachable_proxy_raises_proxy_error(self, origin, servers, certificates):
        port = closed_port()
        url = f"http://{PROXY_USER}:{PROXY_PASSWORD_IN_URL}@127.0.0.1:{port}"
        with connect(origin) as connection, pytest.raises(xcc.ProxyError) as info:
            connection.request("GET", "/devices", verify=certificates["ca"], proxies={"https": url})
        assert str(port) in str(info.value)
        assert_not_leaked(str(info.value), PROXY_PASSWORD, PROXY_PASSWORD_IN_URL)
        assert origin.connections == 0

    def test_an_unparsable_proxy_url_raises_proxy_error_without_its_password(
        self, origin, certificates, monkeypatch
    ):
        monkeypatch.setenv("HTTPS_PROXY", f"http://{PROXY_USER}:{PROXY_PASSWORD_IN_URL}@[::1")
        call = lambda: connect(origin).request("GET", "/", verify=certificates["ca"])
        error = refused_before_sending(origin, xcc.ProxyError, call)
        assert_not_leaked(str(error) + repr(error), PROXY_PASSWORD, PROXY_PASSWORD_IN_URL)

    def test_proxies_as_a_list_raise_type_error_without_the_password(self, origin, certificates):
        proxies = [("https", f"http://{PROXY_USER}:{PROXY_PASSWORD_IN_URL}@127.0.0.1:1")]
        call = lambda: connect(origin).request(
            "GET", "/", verify=certificates["ca"], proxies=proxies
        )
        error = refused_before_sending(origin, TypeError, call)
        assert_not_leaked(str(error) + repr(error), PROXY_PASSWORD, PROXY_PASSWORD_IN_URL)

    # -- which proxy, if any: the environment, NO_PROXY and proxies=

    @pytest.mark.parametrize("scheme, environment, proxies, used", PROXY_SELECTION)
    def test_proxy_is_chosen_as_requests_chooses_it(
        self, servers, tls_context, certificates, monkeypatch, scheme, environment, proxies, used
    ):
        origin = servers.http(tls=tls_context if scheme == "https" else None)
        proxy = servers.proxy(credentials=(PROXY_USER, PROXY_PASSWORD))
        urls = {
            "proxy": proxy.url(PROXY_USER, PROXY_PASSWORD),
            "dead": dead_proxy_url(),
            "port": origin.port,
        }
        for name, value in environment.items():
            monkeypatch.setenv(name, value.format(**urls))
        if proxies is not None:
            proxies = {key: value and value.format(**urls) for key, value in proxies.items()}
        with connect(origin) as connection:
            connection.request("GET", "/devices", verify=certificates["ca"], proxies=proxies)
        assert [r.path for r in origin.requests] == ["/devices"]
        if not used:
            assert proxy.requests == [] and proxy.connections == 0
            return
        expected = {
            "https": f"CONNECT 127.0.0.1:{origin.port} HTTP/1.1",
            "http": f"GET http://127.0.0.1:{origin.port}/devices HTTP/1.1",
        }
        assert [r.request_line for r in proxy.requests] == [expected[scheme]]
        assert proxy.requests[0].headers["proxy-authorization"] == PROXY_AUTHORIZATION

    def test_token_refresh_goes_through_the_same_proxy(self, origin, servers, certificates):
        origin.handler = Cloud()
        proxy = servers.proxy(credentials=(PROXY_USER, PROXY_PASSWORD))
        with connect(origin, access_token=None) as connection:
            connection.request(
                "GET",
                "/devices",
                verify=certificates["ca"],
                proxies={"https": proxy.url(PROXY_USER, PROXY_PASSWORD)},
            )
        assert [(r.method, r.path) for r in origin.requests] == [
            ("POST", TOKEN_PATH),
            ("GET", "/devices"),
        ]
        assert [r.method for r in proxy.requests] == ["CONNECT"]

    # -- a real proxy: tinyproxy

    def test_tinyproxy_tunnels_https_with_basic_credentials(self, origin, servers, certificates):
        proxy = servers.tinyproxy(origin.port)
        with connect(origin) as connection:
            for index in range(3):
                response = connection.request(
                    "GET",
                    f"/jobs/{index}",
                    verify=certificates["ca"],
                    proxies={"https": proxy.url()},
                )
                assert response.json() == {}
        assert [r.path for r in origin.requests] == ["/jobs/0", "/jobs/1", "/jobs/2"]
        assert origin.connections == 1  # one tunnel, kept alive
        for request in origin.requests:
            assert "proxy-authorization" not in request.headers
            assert request.headers["authorization"] == f"Bearer {ACCESS_TOKEN}"

    @pytest.mark.parametrize(
        "password, status",
        # tinyproxy answers 407 to a request without credentials, 401 to a wrong password.
        [(None, "407"), ("wr0ng-pw", "401")],
    )
    def test_tinyproxy_refusing_credentials_raises_proxy_error(
        self, origin, servers, certificates, password, status
    ):
        proxy = servers.tinyproxy(origin.port)
        url = f"http://127.0.0.1:{proxy.port}" if password is None else proxy.url(password)
        with connect(origin) as connection, pytest.raises(xcc.ProxyError) as info:
            connection.request("GET", "/devices", verify=certificates["ca"], proxies={"https": url})
        assert status in str(info.value)
        assert f"127.0.0.1:{proxy.port}" in str(info.value)
        assert_not_leaked(str(info.value) + repr(info.value), "wr0ng-pw", proxy.password)
        assert origin.connections == 0

    def test_tinyproxy_wrong_ca_raises_ssl_error(self, origin, servers, certificates):
        proxy = servers.tinyproxy(origin.port)
        with connect(origin) as connection, pytest.raises(xcc.SSLError):
            connection.request(
                "GET",
                "/devices",
                verify=certificates["lax_ca"],
                proxies={"https": proxy.url()},
            )
        assert origin.requests == []

    def test_tinyproxy_forwards_plain_http_with_credentials(self, servers):
        origin = servers.http()
        proxy = servers.tinyproxy(origin.port)
        with connect(origin) as connection:
            response = connection.request(
                "POST",
                "/jobs",
                params={"size": 1},
                json={"name": "job"},
                proxies={"http": proxy.url()},
            )
        assert response.status_code == 200
        assert [(r.method, r.path, r.query, r.body) for r in origin.requests] == [
            ("POST", "/jobs", {"size": ["1"]}, b'{"name": "job"}')
        ]

    # -- the system's proxy settings (Windows, macOS): the pure parts, by table

    # What urllib.request.getproxies() returns for a system setting, and the proxy that a
    # request for `scheme` goes through. Windows' values are shown as each Python's urllib
    # reads the registry's ProxyServer (3.6-3.9 name the proxy's scheme after the protocol).
    @pytest.mark.parametrize(
        "settings, scheme, windows, expected",
        [
            pytest.param({"https": "http://proxy:3128"}, "https", False, "http://proxy:3128",
                         id="macOS"),
            pytest.param({"https": "proxy:3128"}, "https", True, "http://proxy:3128",
                         id="host:port-without-a-scheme"),
            pytest.param({"http": "http://proxy:3128", "https": "https://proxy:3128",
                          "ftp": "ftp://proxy:3128"}, "https", True, "http://proxy:3128",
                         id="registry-host:port-read-by-3.6-3.9"),
            pytest.param({"http": "http://proxy:3128", "https": "http://proxy:3128",
                          "ftp": "http://proxy:3128"}, "https", True, "http://proxy:3128",
                         id="registry-host:port-read-by-3.10+"),
            pytest.param({"http": "http://web:80", "https": "https://secure:8443"}, "https",
                         True, "http://secure:8443", id="registry-http=web:80;https=secure:8443"),
            pytest.param({"http": "http://web:80", "https": "https://secure:8443"}, "http",
                         True, "http://web:80", id="registry-per-protocol-for-http"),
            pytest.param({"http": "http://web:80"}, "https", True, None,
                         id="registry-http=web:80-only"),
            pytest.param({"https": "HTTPS://proxy:3128"}, "https", True, "http://proxy:3128",
                         id="upper-case-scheme"),
            pytest.param({"https": "https://proxy:443"}, "https", False, "https://proxy:443",
                         id="macOS-keeps-a-scheme-it-names"),
            pytest.param({"socks": "socks://s:1080", "https": "socks4://s:1080"}, "https",
                         True, "socks4://s:1080", id="registry-socks=s:1080"),
            pytest.param({"https": "  "}, "https", True, None, id="blank"),
            pytest.param({}, "https", True, None, id="none"),
        ],
    )  # fmt: skip
    def test_system_proxy_values_are_normalised_to_http_proxies(
        self, settings, scheme, windows, expected
    ):
        assert xcc._system_proxy_url(settings, scheme, windows) == expected

    # Which proxy a request takes: (environment, proxies=, what the system settings say or
    # None where there are none, the proxy chosen, its source, whether the system was read).
    @pytest.mark.parametrize(
        "environ, proxies, system, url, source, asked",
        [
            pytest.param({}, None, "http://sys:3128", "http://sys:3128", "from the system settings",
                         True, id="no-variable:-system"),
            pytest.param({"HTTPS_PROXY": "http://env:1"}, None, "http://sys:3128",
                         "http://env:1", "from HTTPS_PROXY", False,
                         id="variable-wins-over-system"),
            pytest.param({"all_proxy": "http://env:1"}, None, "http://sys:3128", "http://env:1",
                         "from all_proxy", False, id="ALL_PROXY-wins-over-system"),
            pytest.param({"NO_PROXY": "example.com"}, None, "http://sys:3128", None,
                         "direct: no proxy variable or setting", False,
                         id="NO_PROXY-alone-means-environment"),
            pytest.param({"HTTPS_PROXY": "http://env:1", "NO_PROXY": "h"}, None,
                         "http://sys:3128", None, "direct: the NO_PROXY entry 'h' matches", False,
                         id="NO_PROXY-bypasses-the-variable"),
            pytest.param({"https_proxy": "", "HTTPS_PROXY": "http://env:1"}, None,
                         "http://sys:3128", "http://sys:3128", "from the system settings", True,
                         id="empty-lower-case-unsets"),
            pytest.param({"HTTPS_PROXY": "http://env:1"}, {"https": "http://given:2"},
                         "http://sys:3128", "http://given:2", "from proxies['https']", False,
                         id="proxies-win-over-both"),
            pytest.param({}, {"https": None}, "http://sys:3128", None,
                         "direct, from proxies['https']", False, id="proxies-None-goes-direct"),
            pytest.param({}, None, "bypass", None,
                         "direct: the system settings exempt this host", True,
                         id="system-bypass"),
            pytest.param({}, None, None, None, "direct: no proxy variable or setting", False,
                         id="no-system-settings-on-linux"),
        ],
    )  # fmt: skip
    def test_proxy_is_chosen_from_proxies_then_environment_then_system(
        self, environ, proxies, system, url, source, asked
    ):
        calls = []

        def read_system(scheme, host):  # stands for _system_proxy, the one impure part
            calls.append((scheme, host))
            if system == "bypass":
                return None, "direct: the system settings exempt this host"
            return system, "from the system settings"

        chosen = xcc._proxy_url(
            ("https", "h", 443), proxies, environ, None if system is None else read_system
        )
        assert chosen == (url, source)
        assert calls == ([("https", "h")] if asked else [])

    @pytest.mark.parametrize(
        "source, text",
        [
            ("from the system settings", "http://sys:3128, from the system settings"),
            ("direct: the system settings exempt this host",) * 2,
        ],
    )
    def test_the_log_says_system_settings(self, source, text):
        proxy = xcc._proxy("http://sys:3128") if source.startswith("from") else None
        assert xcc._proxy_text(proxy, source) == text

    @pytest.mark.skipif(sys.platform != "linux", reason="Linux has no system proxy setting")
    def test_linux_never_reads_system_settings(self):
        assert xcc._SYSTEM_PROXY is None

    @pytest.mark.parametrize(
        "environment, url, reason",
        [
            ({"https_proxy": "p.example:3128"}, "http://p.example:3128",
             "from the system settings"),
            ({"https_proxy": "p.example:3128", "no_proxy": "h"}, None,
             "direct: the system settings exempt this host"),
            ({"ftp_proxy": "http://ftp.example:21"}, None, "direct: no proxy variable or setting"),
        ],
    )  # fmt: skip
    def test_system_reader_goes_through_urllib_request(self, monkeypatch, environment, url, reason):
        # On Linux urllib.request reads only the environment: this checks the wiring of
        # _system_proxy to getproxies() and proxy_bypass(), not Windows' or macOS's readers.
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        assert xcc._system_proxy("https", "h") == (url, reason)

    @pytest.mark.parametrize(
        "credentials, shown",
        [("user:hunter-q8x2#2", "hunter-q8x2"), ("user:65431#x", "65431"),
         ("user:hunter-q8x2/2", "hunter-q8x2"), ("user:65431?x", "65431"),
         ("hunter-q8x2#user:pass-z9k3w", "hunter-q8x2")],
    )  # fmt: skip
    # Secrets no path or port here can hold: 65431 is above Linux's ephemeral ports (and
    # still a valid port, which the second case needs), the others are long and unique.
    @pytest.mark.parametrize("where", ["environment", "proxies"])
    def test_an_unparsable_proxy_url_shows_no_part_of_its_credentials(
        self, origin, servers, certificates, monkeypatch, where, credentials, shown
    ):
        # An unencoded "#", "/" or "?" ends the authority early: the credentials' first part
        # would be read as the host and the rest as the port (or a path).
        proxy = servers.proxy()
        url = f"http://{credentials}@127.0.0.1:{proxy.port}"
        proxies = {"https": url} if where == "proxies" else None
        if where == "environment":
            monkeypatch.setenv("HTTPS_PROXY", url)
        call = lambda: connect(origin).request(
            "GET", "/", verify=certificates["ca"], proxies=proxies, timeout=5
        )
        error = refused_before_sending(origin, xcc.ProxyError, call)
        assert "Invalid proxy URL" in str(error)
        shown_texts = everything_shown(error) + reachable_texts(error)
        assert_not_leaked(shown_texts, credentials, credentials.split(":")[-1], shown)
        assert proxy.connections == 0

    def test_rotating_proxy_urls_leave_a_bounded_number_of_passwords_in_memory(self, servers):
        origin = servers.http()
        proxy = servers.proxy()
        for number in range(100):
            url = proxy.url(PROXY_USER, f"rotating-secret-{number:03d}")
            assert connect(origin).request("GET", "/", proxies={"http": url}).ok
        gc.collect()
        authorizations = [
            getattr(o, "authorization", "") or "" for o in gc.get_objects() if type(o) is xcc._Proxy
        ]
        decoded = " ".join(base64.b64decode(a[6:]).decode() for a in authorizations if a)
        assert len(proxy.requests) == 100
        assert decoded.count("rotating-secret-") <= 16
        assert "rotating-secret-000" not in decoded  # the least recently used went first

    def test_a_refusing_proxy_is_named_with_the_setting_that_chose_it(self, servers):
        origin = servers.http()
        url = f"http://127.0.0.1:{closed_port()}"
        expected = rf"^Cannot connect to proxy {url}: .* \(the proxy from proxies\['http'\]\)$"
        with connect(origin) as connection, pytest.raises(xcc.ProxyError, match=expected):
            connection.request("GET", "/devices", proxies={"http": url})
        assert origin.requests == []

    def test_a_407_keeps_no_proxy_password_anywhere_reachable(self, servers):
        origin = servers.http()
        proxy = servers.proxy(credentials=(PROXY_USER, "the-right-one"))
        url = proxy.url(PROXY_USER, PROXY_PASSWORD)
        with connect(origin) as connection, pytest.raises(xcc.ProxyError) as info:
            connection.request("GET", "/devices", proxies={"http": url})
        assert info.value.response.status_code == 407
        assert str(info.value).endswith(" (the proxy from proxies['http'])")
        shown = everything_shown(info.value) + reachable_texts(info.value)
        assert_not_leaked(shown, PROXY_PASSWORD, PROXY_PASSWORD_IN_URL, PROXY_AUTHORIZATION[6:])

    @pytest.mark.parametrize("in_url", [True, False])
    def test_a_forwarding_proxy_gets_one_proxy_authorization_the_proxy_urls(self, servers, in_url):
        origin = servers.http()
        proxy = servers.proxy()
        url = proxy.url(PROXY_USER, PROXY_PASSWORD) if in_url else proxy.url()
        own = "Basic " + base64.b64encode(b"caller:own").decode("ascii")
        with connect(origin) as connection:
            connection.request(
                "GET", "/jobs", headers={"Proxy-Authorization": own}, proxies={"http": url}
            )
        (request,) = proxy.requests
        assert request.header_values("Proxy-Authorization") == [
            PROXY_AUTHORIZATION if in_url else own
        ]


# ------------------------------------------------------------------------ transport: TLS


SUBPROCESS_REQUEST = """
import sys, xcc
connection = xcc.Connection(access_token=sys.argv[1], host="127.0.0.1", port=int(sys.argv[2]))
try:
    print(connection.request("GET", "/from-subprocess").status_code)
except xcc.SSLError:
    print("SSLError")
"""


def request_in_subprocess(port, **environment):
    """Returns what a request to ``port`` in a new Python process prints: the status code,
    or ``SSLError`` (a new process, because verify=True contexts are cached per process)."""
    code, out, err = run_python(
        ["-c", SUBPROCESS_REQUEST, ACCESS_TOKEN, str(port)], env=dict(os.environ, **environment)
    )
    assert code == 0, err
    return out.strip()


class TestTLS:
    # Python 3.7+ gives OpenSSL's cause (verify_message); 3.6 names only a wrong host name.
    SSL_NAMES_THE_CAUSE = sys.version_info >= (3, 7)

    def test_default_verification_refuses_a_private_ca(self, tls_server):
        with pytest.raises(xcc.SSLError) as info:
            connect(tls_server).request("GET", "/")
        assert isinstance(info.value, xcc.ConnectionError)
        message = str(info.value)
        assert "127.0.0.1" in message
        assert "REQUESTS_CA_BUNDLE" in message and "SSL_CERT_FILE" in message
        assert tls_server.requests == []

    def test_verify_with_the_ca_file_is_accepted(self, tls_server, certificates):
        response = connect(tls_server).request("GET", "/ok", verify=certificates["ca"])
        assert response.status_code == 200
        assert [r.path for r in tls_server.requests] == ["/ok"]

    @pytest.mark.parametrize("how", ["verify", "REQUESTS_CA_BUNDLE"])
    def test_a_ca_taken_out_of_the_bundle_file_is_no_longer_trusted(
        self, tls_server, certificates, tmp_path, monkeypatch, how
    ):
        bundle = tmp_path / "bundle.pem"
        shutil.copy(certificates["ca"], str(bundle))
        kwargs = {"verify": str(bundle)} if how == "verify" else {}
        if how == "REQUESTS_CA_BUNDLE":
            monkeypatch.setenv(how, str(bundle))
        connection = connect(tls_server)
        assert connection.request("GET", "/trusted", **kwargs).ok
        shutil.copy(certificates["lax_ca"], str(bundle))  # another CA: the server's is gone
        assert connection.request("GET", "/pooled", **kwargs).ok  # a verified socket stays
        connection.close()
        with pytest.raises(xcc.SSLError):
            connection.request("GET", "/new", **kwargs)
        assert [r.path for r in tls_server.requests] == ["/trusted", "/pooled"]

    def test_ssl_contexts_are_kept_for_a_bounded_number_of_ca_files(
        self, tls_server, certificates, tmp_path
    ):
        def contexts():
            gc.collect()
            return sum(isinstance(o, ssl.SSLContext) for o in gc.get_objects())

        before = contexts()
        for number in range(60):  # each a temporary CA file, deleted after use
            bundle = str(tmp_path / f"ca{number}.pem")
            shutil.copy(certificates["ca"], bundle)
            with connect(tls_server) as connection:
                assert connection.request("GET", "/", verify=bundle).ok
            os.remove(bundle)
        assert contexts() - before <= 20  # 16 kept, and a few that the test's servers hold

    def test_verify_with_a_hashed_ca_directory_is_accepted(
        self, tls_server, certificates, tmp_path
    ):
        response = connect(tls_server).request("GET", "/dir", verify=certificates["ca_directory"])
        assert response.status_code == 200
        # The hash link is what OpenSSL looks up: the same file under another name is not found.
        unhashed = str(tmp_path / "unhashed")
        os.makedirs(unhashed)
        shutil.copy(certificates["ca"], os.path.join(unhashed, "ca.pem"))
        with pytest.raises(xcc.SSLError):
            connect(tls_server).request("GET", "/unhashed", verify=unhashed)
        assert [r.path for r in tls_server.requests] == ["/dir"]

    def test_verify_false_accepts_a_self_signed_certificate(self, servers, certificates):
        server = servers.http(
            tls=server_context(certificates["self_signed"], certificates["self_signed_key"])
        )
        with pytest.raises(xcc.SSLError):
            connect(server).request("GET", "/verified")
        assert connect(server).request("GET", "/unverified", verify=False).status_code == 200
        assert [r.path for r in server.requests] == ["/unverified"]

    @pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
    def test_ca_bundle_variable_is_accepted(self, tls_server, certificates, monkeypatch, variable):
        monkeypatch.setenv(variable, certificates["ca"])
        assert connect(tls_server).request("GET", "/env").status_code == 200

    @pytest.mark.parametrize(
        "requests_bundle, curl_bundle, accepted",
        [("ca", "lax_ca", True), ("lax_ca", "ca", False)],
    )
    def test_requests_ca_bundle_wins_over_curl_ca_bundle(
        self, tls_server, certificates, monkeypatch, requests_bundle, curl_bundle, accepted
    ):
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", certificates[requests_bundle])
        monkeypatch.setenv("CURL_CA_BUNDLE", certificates[curl_bundle])
        if accepted:
            assert connect(tls_server).request("GET", "/env").status_code == 200
        else:
            with pytest.raises(xcc.SSLError):
                connect(tls_server).request("GET", "/env")

    def test_explicit_verify_wins_over_the_ca_bundle_variables(
        self, tls_server, certificates, monkeypatch
    ):
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", certificates["lax_ca"])
        monkeypatch.setenv("CURL_CA_BUNDLE", certificates["lax_ca"])
        connection = connect(tls_server)
        assert connection.request("GET", "/a", verify=certificates["ca"]).status_code == 200
        assert connection.request("GET", "/b", verify=False).status_code == 200

    @pytest.mark.parametrize("variable", ["SSL_CERT_FILE", "SSL_CERT_DIR"])
    def test_openssl_default_path_variable_is_honoured(self, tls_server, certificates, variable):
        value = certificates["ca" if variable == "SSL_CERT_FILE" else "ca_directory"]
        assert request_in_subprocess(tls_server.port) == "SSLError"
        assert request_in_subprocess(tls_server.port, **{variable: value}) == "200"
        assert [r.path for r in tls_server.requests] == ["/from-subprocess"]

    def test_hostname_mismatch_is_refused(self, servers, certificates):
        tls = server_context(certificates["localhost_cert"], certificates["localhost_key"])
        server = servers.http(tls=tls)  # its certificate names localhost, not 127.0.0.1
        by_name = connect(server, host="localhost")
        assert by_name.request("GET", "/by-name", verify=certificates["ca"]).status_code == 200
        by_name.close()  # its origin ("localhost") is not one that the fixture closes
        with pytest.raises(xcc.SSLError) as info:
            connect(server).request("GET", "/by-address", verify=certificates["ca"])
        assert "127.0.0.1" in str(info.value)
        assert [r.path for r in server.requests] == ["/by-name"]

    def test_ca_without_critical_basic_constraints_is_accepted(self, servers, certificates):
        server = servers.http(tls=server_context(certificates["lax_cert"], certificates["lax_key"]))
        response = connect(server).request("GET", "/lax", verify=certificates["lax_ca"])
        assert response.status_code == 200
        if sys.version_info >= (3, 13):
            # Python 3.13's default context (VERIFY_X509_STRICT) refuses this CA.
            strict = ssl.create_default_context(cafile=certificates["lax_ca"])
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            with sock, pytest.raises(ssl.SSLCertVerificationError):
                strict.wrap_socket(sock, server_hostname="127.0.0.1")

    def test_nonexistent_verify_path_raises_value_error_before_connecting(
        self, tls_server, tmp_path
    ):
        missing = str(tmp_path / "no-such-ca.pem")
        call = lambda: connect(tls_server).request("GET", "/", verify=missing)
        error = refused_before_sending(tls_server, ValueError, call)
        assert missing in str(error)

    def test_a_tls_failure_that_is_not_about_the_certificate_gives_no_ca_hint(self, servers):
        def serve(sock, index):
            sock.recv(65536)  # the ClientHello, answered as a plain HTTP server would
            sock.sendall(raw_response(b"not TLS", "400 Bad Request"))

        plain = servers.raw(serve)
        with pytest.raises(xcc.RequestException) as info:
            connect(plain, tls=True).request("GET", "/", timeout=5)
        assert type(info.value) is xcc.SSLError
        message = str(info.value)
        assert "127.0.0.1" in message
        assert "REQUESTS_CA_BUNDLE" not in message and "SSL_CERT_FILE" not in message

    # A server that closes a TLS connection without a close_notify alert, as many do: with
    # OpenSSL 3, Python 3.6 and 3.7 raise where 3.8+ see the end of the stream.

    def test_a_body_framed_by_a_tls_close_without_close_notify_is_read_whole(
        self, servers, tls_context, certificates
    ):
        reply = raw_head("200 OK", [("Connection", "close")]) + b'{"a": 1}'
        raw = fault_server(servers, reply, tls=tls_context)
        response = connect(raw).request("GET", "/until-close", verify=certificates["ca"])
        assert response.json() == {"a": 1}

    def test_a_get_on_a_stale_tls_socket_is_sent_again_on_a_new_one(
        self, servers, tls_context, certificates
    ):
        raw = dying_server(servers, tls=tls_context)
        connection = connect(raw)
        assert connection.request("GET", "/first", verify=certificates["ca"]).ok
        assert connection.request("GET", "/second", verify=certificates["ca"]).ok
        assert [(r.connection, r.path) for r in raw.requests] == [
            (1, "/first"),
            (1, "/second"),
            (2, "/second"),
        ]

    # -- a verification failure names its cause, and only advice that can help

    def test_unknown_issuer_names_the_cause_and_the_ca_advice(self, tls_server):
        with pytest.raises(xcc.SSLError) as info:
            connect(tls_server).request("GET", "/")
        message = str(info.value)
        assert "the TLS certificate of '127.0.0.1' did not verify (" in message
        assert "pass verify='/path/to/ca.pem' or set REQUESTS_CA_BUNDLE" in message
        assert "SSL_CERT_FILE" in message
        if self.SSL_NAMES_THE_CAUSE:
            assert "unable to get local issuer certificate" in message
            assert "clock" not in message
        else:
            assert "its issuer may not be trusted here, or it has expired" in message
        assert tls_server.requests == []
        # One handshake: no second, unverified one to read the certificate.
        assert tls_server.settled_connections() == 1

    def test_self_signed_certificate_gets_the_ca_advice(self, servers, certificates):
        tls = server_context(certificates["self_signed"], certificates["self_signed_key"])
        with pytest.raises(xcc.SSLError) as info:
            connect(servers.http(tls=tls)).request("GET", "/")
        if self.SSL_NAMES_THE_CAUSE:
            assert re.search("self.signed certificate", str(info.value))
        assert "REQUESTS_CA_BUNDLE" in str(info.value)

    @pytest.mark.parametrize(
        "leaf, cause",
        [("expired_cert", "certificate has expired"),
         ("future_cert", "certificate is not yet valid")],
    )  # fmt: skip
    def test_certificate_out_of_its_dates_names_the_cause_and_the_clock(
        self, servers, certificates, leaf, cause
    ):
        tls = server_context(certificates[leaf], certificates[leaf.replace("cert", "key")])
        server = servers.http(tls=tls)
        before = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
        with pytest.raises(xcc.SSLError) as info:
            connect(server).request("GET", "/", verify=certificates["ca"])
        after = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
        message = str(info.value)
        assert any(f"this machine's clock says {now}" in message for now in (before, after))
        if self.SSL_NAMES_THE_CAUSE:
            assert f"certificate verify failed: {cause}" in message
            # Another CA cannot help: no CA advice.
            assert "REQUESTS_CA_BUNDLE" not in message and "verify=" not in message
        else:
            assert "or it has expired or is not valid yet (this machine's clock" in message
            assert "REQUESTS_CA_BUNDLE" in message
        assert server.requests == []

    @pytest.mark.parametrize(
        "host, cause",
        [("127.0.0.1", "IP address mismatch, certificate is not valid for '127.0.0.1'"),
         ("localhost", "Hostname mismatch, certificate is not valid for 'localhost'")],
    )  # fmt: skip
    def test_host_name_mismatch_names_the_host(self, servers, certificates, host, cause):
        tls = server_context(certificates["other_name_cert"], certificates["other_name_key"])
        server = servers.http(tls=tls)
        connection = connect(server, host=host)
        with pytest.raises(xcc.SSLError) as info:
            connection.request("GET", "/", verify=certificates["ca"])
        connection.close()
        message = str(info.value)
        assert f"the TLS certificate of {host!r} did not verify (" in message
        if self.SSL_NAMES_THE_CAUSE:
            assert cause in message
        else:  # the CertificateError of Python 3.6
            assert f"hostname {host!r} doesn't match 'xcc.invalid'" in message
        assert "REQUESTS_CA_BUNDLE" not in message and "clock" not in message
        assert server.requests == []

    def test_an_expired_certificate_behind_a_proxy_is_named_through_the_tunnel(
        self, servers, certificates
    ):
        tls = server_context(certificates["expired_cert"], certificates["expired_key"])
        origin = servers.http(tls=tls)
        proxy = servers.proxy(credentials=(PROXY_USER, PROXY_PASSWORD))
        with pytest.raises(xcc.SSLError) as info:
            connect(origin).request(
                "GET", "/", verify=certificates["ca"],
                proxies={"https": proxy.url(PROXY_USER, PROXY_PASSWORD)},
            )  # fmt: skip
        assert "this machine's clock says" in str(info.value)
        if self.SSL_NAMES_THE_CAUSE:
            assert "certificate has expired" in str(info.value)
        assert_not_leaked(everything_shown(info.value), *secrets_of())
        assert len(proxy.requests) == 1  # one tunnel, one handshake
        assert origin.requests == []

    def test_command_line_gives_only_the_variables_as_ca_advice(self, tls_server):
        settings = dict(cli_settings(tls_server), XANADU_CLOUD_TLS="true")
        code, out, err = run_cli(["ping"], settings)
        assert code == 1 and out == ""
        assert_one_error_line(err)
        assert "set REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE, SSL_CERT_FILE or SSL_CERT_DIR" in err
        assert "verify=" not in err

    def test_a_certificates_control_characters_are_escaped_and_its_names_bounded(
        self, servers, tmp_path, debug_log
    ):
        # A certificate's subject reaches the log and, on Python 3.6, its names the message
        # of a wrong host name (a forged line, a terminal escape).
        cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
        names = ["DNS:evil\x1b[2J" + "a" * 300] + [f"DNS:n{i}.test" for i in range(20)]
        try:
            subprocess.run(
                ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                 "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert, "-days",
                 "30", "-utf8", "-subj", "/CN=ok\r\nxcc: FORGED \x1b[31m\u2028\x85",
                 "-addext", "subjectAltName=" + ",".join(names + ["IP:127.0.0.1"])],
                check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            )  # fmt: skip
        except OSError as exc:
            pytest.skip(f"cannot make a test certificate: {exc}")
        server = servers.http(tls=server_context(cert, key))
        by_name = connect(server, host="localhost")  # a name that the certificate lacks
        with pytest.raises(xcc.SSLError) as info:
            by_name.request("GET", "/", verify=cert)
        by_name.close()
        connection = connect(server)
        connection.request("GET", "/verified", verify=cert)
        connection.request("GET", "/unverified", verify=False)
        shown = [str(info.value)] + logged(debug_log)
        if not self.SSL_NAMES_THE_CAUSE:
            assert "doesn't match either of 'evil\\x1b[2Jaaa" in shown[0]
        assert len(shown[0]) < 1000
        escaped = "CN=ok\\x0d\\x0axcc: FORGED \\x1b[31m\\u2028\\x85"
        verified = f"with '127.0.0.1': certificate of {escaped}, issued by {escaped}, valid"
        assert any(verified in line for line in shown)
        assert any(line.endswith("certificate not verified (verify=False)") for line in shown)
        for text in shown:
            assert not set("\r\n\x1b\x85\u2028") & set(text)


# ----------------------------------------------------------------------- transport: pool


# More than the loopback interface's socket buffers hold: sending it takes a while, and a
# server that answers and closes before reading it resets the connection under the upload.
LARGE_BODY = 8 << 20


def dying_server(servers, tls=None):
    """Returns a server (HTTPS with a server-side SSL context ``tls``) whose first
    connection answers one request, then reads the second one and closes without answering
    (over TLS, without a close_notify alert); later connections answer every request."""

    def serve(sock, index):
        count = 0
        while raw.read(sock):
            count += 1
            if index == 1 and count == 2:
                return  # closed after reading the request, before any response byte
            sock.sendall(raw_response(b""))

    raw = servers.raw(serve, tls)
    return raw


class TestPool:
    """Keep-alive pooling, observed by which TCP connection each request
    reached on the server."""

    def test_twenty_sequential_requests_use_one_connection(self, server):
        connection = connect(server)
        for i in range(20):
            if i % 2:
                response = connection.request("POST", "/jobs", json={"i": i})
            else:
                response = connection.request("GET", f"/jobs/{i}")
            assert response.ok
        assert server.connections == 1
        assert len(server.requests) == 20
        assert {request.connection for request in server.requests} == {1}

    def test_a_new_connection_object_per_request_reuses_the_socket(self, server):
        tokens = [make_jwt(int(time.time()) + 3600, f"user-{i}") for i in range(10)]
        for token in tokens:
            assert connect(server, access_token=token).request("GET", "/jobs").ok
        assert server.connections == 1
        assert {request.connection for request in server.requests} == {1}
        # Sockets are shared, tokens are not: each Connection sent its own.
        sent = [request.headers["authorization"] for request in server.requests]
        assert sent == ["Bearer " + token for token in tokens]

    def test_a_server_dropping_idle_connections_never_fails_a_get(self, server):
        connection = connect(server)
        for i in range(5):
            assert connection.request("GET", f"/jobs/{i}").json() == {}
            server.drop_idle_connections()
        assert [request.path for request in server.requests] == [f"/jobs/{i}" for i in range(5)]
        assert [request.connection for request in server.requests] == [1, 2, 3, 4, 5]

    def test_a_server_closing_after_each_response_never_fails_a_get(self, servers):
        # Keep-alive is not refused (no "Connection: close"): the socket simply dies.
        raw = fault_server(servers, raw_response(b"{}"))
        connection = connect(raw)
        for i in range(5):
            assert connection.request("GET", f"/jobs/{i}").json() == {}
        assert len(raw.requests) == 5
        assert raw.connections == 5

    def test_a_post_after_the_server_closed_the_idle_socket_goes_on_a_new_one(self, servers):
        closed = threading.Event()

        def reply(sock):
            sock.sendall(raw_response(b"{}"))
            sock.close()
            closed.set()

        raw = fault_server(servers, reply)
        connection = connect(raw)
        for i in range(3):
            closed.clear()
            assert connection.request("POST", "/jobs", json={"i": i}).json() == {}
            assert closed.wait(5)
            time.sleep(0.05)  # the FIN crosses the loopback interface
        # The liveness check saw each close: every POST went once, on a new socket.
        assert len(raw.requests) == 3
        assert raw.connections == 3

    @pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
    def test_a_reset_after_the_first_byte_of_the_answer_is_not_sent_again(self, servers, method):
        def serve(sock, index):
            if raw.read(sock) is None:
                return
            sock.sendall(raw_response(b""))
            if raw.read(sock) is None:
                return
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Le")  # the server acted on it
            time.sleep(0.05)
            # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()

        raw = servers.raw(serve)
        connection = connect(raw)
        assert connection.request("GET", "/first").ok
        with pytest.raises(xcc.RequestException) as info:
            connection.request(method, "/second")
        assert_names_url(info.value, xcc.ConnectionError, connection.url("/second"))
        assert "reset" in str(info.value)
        assert [r.path for r in raw.requests] == ["/first", "/second"]

    @pytest.mark.parametrize(
        "method, kwargs",
        [("GET", {}), ("HEAD", {}), ("PUT", {"data": b"payload"}), ("DELETE", {}),
         ("OPTIONS", {})],
    )  # fmt: skip
    def test_an_idempotent_request_on_a_dead_reused_socket_is_sent_once_more(
        self, servers, method, kwargs
    ):
        raw = dying_server(servers)
        connection = connect(raw)
        assert connection.request("GET", "/first").ok  # a HEAD's socket is not kept
        assert connection.request(method, "/second", **kwargs).ok
        body = kwargs.get("data", b"")
        assert [(r.connection, r.request_line, r.body) for r in raw.requests] == [
            (1, "GET /first HTTP/1.1", b""),
            (1, f"{method} /second HTTP/1.1", body),
            (2, f"{method} /second HTTP/1.1", body),
        ]

    @pytest.mark.parametrize("method", ["POST", "PATCH"])
    def test_a_post_or_patch_on_a_dead_reused_socket_is_never_sent_twice(self, servers, method):
        raw = dying_server(servers)
        connection = connect(raw)
        assert connection.request(method, "/jobs", json={"n": 1}).ok
        with pytest.raises(xcc.RequestException) as info:
            connection.request(method, "/jobs/2", json={"status": "cancelled"})
        assert_names_url(info.value, xcc.ConnectionError, connection.url("/jobs/2"))
        assert [(r.connection, r.request_line) for r in raw.requests] == [
            (1, f"{method} /jobs HTTP/1.1"),
            (1, f"{method} /jobs/2 HTTP/1.1"),
        ]
        assert raw.connections == 1

    def test_threads_sharing_a_connection_never_interleave_on_a_socket(self, servers):
        def body_for(path):
            return f"{path};".encode() * (1 + len(path) * 37 % 400)

        server = servers.http(lambda request: json_reply(200, {"path": request.path}))
        connection = connect(server)
        barrier = threading.Barrier(8)
        results, failures = [], []

        def work(thread):
            barrier.wait(5)
            for i in range(10):
                path = f"/t{thread}/r{i}"
                try:
                    answer = connection.request(
                        "POST", path, data=body_for(path), headers={"X-Path": path}
                    ).json()
                except Exception as exc:  # noqa: BLE001 (reported below)
                    failures.append((path, repr(exc)))
                else:
                    results.append((path, answer["path"]))

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert failures == []
        assert len(results) == 80
        assert all(sent == echoed for sent, echoed in results)
        assert len(server.requests) == 80
        for request in server.requests:
            # One request at a time on a socket: each arrived whole, with its own body and
            # fields, and no byte of another request came before its response.
            assert request.well_formed and not request.pipelined, request
            assert request.method == "POST"
            names = [name.lower() for name, _ in request.raw_headers]
            assert len(names) == len(set(names)), request.raw_headers
            assert request.header_values("X-Path") == [request.path]
            assert request.body == body_for(request.path)
        assert server.connections <= 8  # sockets were reused, one request at a time

    @pytest.mark.parametrize("size", [5000, 1 << 20], ids=["buffered", "megabyte"])
    @pytest.mark.parametrize("read_to_the_end", [False, True])
    def test_a_stream_is_reused_only_when_read_to_the_end(self, server, read_to_the_end, size):
        # 5000 bytes arrive whole in the client's read buffer: nothing is left on the socket
        # to tell that the body was not read to its end.
        body = megabyte()[:size]
        server.handler = lambda request: Reply(200, body if request.path == "/big" else b"{}")
        connection = connect(server)
        response = connection.request("GET", "/big", stream=True)
        if read_to_the_end:
            assert b"".join(response.iter_content(1000)) == body
        else:
            assert next(response.iter_content(1000)) == body[:1000]
        response.close()
        assert connection.request("GET", "/small").json() == {}
        assert [request.connection for request in server.requests] == (
            [1, 1] if read_to_the_end else [1, 2]
        )

    @pytest.mark.parametrize("how", ["close", "with"])
    def test_closing_a_connection_closes_its_servers_idle_sockets(self, servers, how):
        ended = threading.Event()

        def serve(sock, index):
            while raw.read(sock):
                sock.sendall(raw_response(b"{}"))
            ended.set()

        raw = servers.raw(serve)
        other = servers.http()
        connect(other).request("GET", "/")
        if how == "close":
            connection = connect(raw)
            connection.request("GET", "/")
            assert not ended.is_set()
            connection.close()
        else:
            with connect(raw) as connection:
                connection.request("GET", "/")
                assert not ended.is_set()
        assert ended.wait(5), "the server did not see its idle connection end"
        # The connection stays usable, and the other server's idle socket was kept.
        assert connection.request("GET", "/again").ok
        assert raw.connections == 2
        connect(other).request("GET", "/")
        assert other.connections == 1

    def test_the_pool_keeps_at_most_ten_idle_sockets_per_server(self, servers):
        barrier = threading.Barrier(15)
        lock = threading.Lock()
        closed = []

        def serve(sock, index):
            first = True
            try:
                while raw.read(sock):
                    if first:
                        first = False
                        try:
                            barrier.wait(5)  # all 15 sockets are open before any answer
                        except threading.BrokenBarrierError:
                            pass
                    sock.sendall(raw_response(b"{}"))
            except OSError:
                pass
            with lock:
                closed.append(index)

        raw = servers.raw(serve)
        connection = connect(raw)
        failures = []

        def work(i):
            try:
                connection.request("GET", f"/{i}")
            except Exception as exc:  # noqa: BLE001 (reported below)
                failures.append(repr(exc))

        threads = [threading.Thread(target=work, args=(i,)) for i in range(15)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert failures == []
        assert raw.connections == 15
        # Of the 15 released sockets, the client closes 5 at once and keeps 10.
        assert wait_until(lambda: len(closed) >= 5)
        time.sleep(0.1)
        assert len(closed) == 5
        for i in range(20):
            assert connection.request("GET", f"/burst/{i}").ok
        assert raw.connections == 15  # the kept sockets were reused
        connection.close()
        assert wait_until(lambda: len(closed) == 15)

    def test_a_pooled_socket_takes_the_read_timeout_of_the_current_request(self, servers):
        release = threading.Event()

        def serve(sock, index):
            count = 0
            while raw.read(sock):
                count += 1
                if count == 2:
                    release.wait(2)  # late for a 0.3 s timeout, in time for a 30 s one
                sock.sendall(raw_response(b"{}"))

        raw = servers.raw(serve)
        connection = connect(raw)
        try:
            assert connection.request("GET", "/first", timeout=30).json() == {}
            with pytest.raises(xcc.RequestException) as info:
                connection.request("GET", "/second", timeout=0.3)
        finally:
            release.set()
        assert type(info.value) is xcc.ReadTimeout
        assert str(info.value) == f"GET request to '{connection.url('/second')}' timed out"
        assert [(r.path, r.connection) for r in raw.requests] == [("/first", 1), ("/second", 1)]

    @pytest.mark.parametrize(
        "method, status", [("DELETE", "204 No Content"), ("GET", "304 Not Modified")]
    )
    def test_a_204_or_304_that_sends_the_body_it_announced_leaves_no_stray_bytes(
        self, server, method, status
    ):
        def handler(request):
            if request.path == "/empty":
                return raw_head(status, [("Content-Length", 2)]) + b"{}"
            return json_reply(200, {"path": request.path})

        server.handler = handler
        connection = connect(server)
        response = connection.request(method, "/empty", timeout=(5, 1))
        assert (response.status_code, response.content) == (int(status[:3]), b"")
        # The "{}" is not read as the start of the next response: that one gets a new socket.
        assert connection.request("GET", "/next", timeout=(5, 1)).json() == {"path": "/next"}
        assert [(r.path, r.connection) for r in server.requests] == [("/empty", 1), ("/next", 2)]

    def test_the_socket_of_a_101_switching_protocols_is_not_reused(self, servers):
        def serve(sock, index):
            upgraded = False
            while raw.read(sock):
                if upgraded:  # this socket speaks another protocol now: a WebSocket frame
                    sock.sendall(b"\x81\x05hello")
                elif index == 1:
                    head = [("Upgrade", "websocket"), ("Connection", "Upgrade")]
                    sock.sendall(raw_head("101 Switching Protocols", head))
                    upgraded = True
                else:
                    sock.sendall(raw_response(b"{}"))

        raw = servers.raw(serve)
        connection = connect(raw)
        assert connection.request("GET", "/upgrade", timeout=(5, 1)).status_code == 101
        assert connection.request("GET", "/next", timeout=(5, 1)).json() == {}
        assert [(r.path, r.connection) for r in raw.requests] == [("/upgrade", 1), ("/next", 2)]

    @pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is not available")
    def test_a_forked_child_never_reuses_its_parents_sockets(self, server):
        connection = connect(server)
        assert connection.request("GET", "/parent").ok
        assert exit_code_of_child(lambda: connection.request("GET", "/child", timeout=5).ok) == 0
        assert connection.request("GET", "/parent-again").ok
        seen = [(request.path, request.connection) for request in server.requests]
        assert seen == [("/parent", 1), ("/child", 2), ("/parent-again", 1)]

    def test_the_idle_sockets_of_at_most_ten_servers_are_kept_least_recently_used_go_first(
        self, servers
    ):
        # 25 requests redirected to 25 servers: the pool keeps the sockets of the last ten
        # servers it used (the redirecting one and the last nine), as urllib3's PoolManager.
        ended = []

        def recording(name):
            def serve(sock, index):
                while raw.read(sock):
                    sock.sendall(raw_response(b"{}"))
                ended.append(name)

            raw = servers.raw(serve)
            return raw

        origins = [recording(n) for n in range(25)]
        front = servers.http(
            lambda request: Reply(302, headers=[("Location", origins[int(request.path[4:])].url)])
        )
        connection = connect(front)
        for n in range(25):
            assert connection.request("GET", f"/go/{n}").json() == {}
        assert wait_until(lambda: len(ended) >= 16)
        time.sleep(0.1)
        assert sorted(ended) == list(range(16))
        # The most recently used keep their socket: a request reuses it.
        assert connect(origins[24]).request("GET", "/again").ok
        assert origins[24].connections == 1
        assert front.connections == 1

    def test_an_idle_socket_that_its_server_closed_is_dropped_when_another_server_is_used(
        self, servers
    ):
        half_closed, ended = threading.Event(), threading.Event()

        def serve(sock, index):
            if raw.read(sock):
                sock.sendall(raw_response(b"{}"))
                sock.shutdown(socket.SHUT_WR)  # the server is done with this socket
                half_closed.set()
                wait_for_close(sock)
                ended.set()

        raw = servers.raw(serve)
        assert connect(raw).request("GET", "/once").ok
        assert half_closed.wait(5)
        time.sleep(0.05)  # the FIN crosses the loopback interface
        assert connect(servers.http()).request("GET", "/elsewhere").ok
        # The client closed its end without being asked to reach that server again.
        assert ended.wait(5)

    def test_an_idle_socket_older_than_the_idle_limit_is_not_reused(self, server, monkeypatch):
        monkeypatch.setattr(xcc, "_MAX_IDLE_SECONDS", 0.2)
        connection = connect(server)
        assert connection.request("GET", "/first").ok
        time.sleep(0.3)
        assert connection.request("GET", "/second").ok
        assert [(r.path, r.connection) for r in server.requests] == [("/first", 1), ("/second", 2)]

    @pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is not available")
    def test_a_child_forked_while_a_parent_thread_holds_the_pool_can_close_and_reuse(self, server):
        connection = connect(server)
        assert connection.request("GET", "/parent").ok
        held, release = threading.Event(), threading.Event()

        def hold():
            # A parent thread in the middle of a pool operation at the moment of the fork,
            # made to last so that the fork surely falls inside it.
            with xcc._POOL._lock:
                held.set()
                release.wait(10)

        holder = threading.Thread(target=hold)
        holder.start()
        try:
            assert held.wait(5)

            def child():
                connection.close()
                with connect(server) as other:
                    return other.request("GET", "/child", timeout=5).ok

            code = exit_code_of_child(child)
        finally:
            release.set()
            holder.join(10)
        assert code == 0
        assert [(r.path, r.connection) for r in server.requests] == [("/parent", 1), ("/child", 2)]

    @pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
    def test_an_answer_sent_before_the_body_was_read_is_returned(
        self, servers, tls_context, certificates, tls
    ):
        detail = json.dumps({"detail": "Payload too large"}).encode()

        def serve(sock, index):
            head = b""
            while b"\r\n\r\n" not in head:
                head += sock.recv(65536)
            sock.sendall(raw_response(detail, "413 Payload Too Large", [("Connection", "close")]))
            # Closing with the body unread resets the connection under the client's upload.

        raw = servers.raw(serve, tls_context if tls else None)
        with pytest.raises(xcc.HTTPError) as info:
            connect(raw).request(
                "POST", "/jobs", data=b"x" * LARGE_BODY, verify=certificates["ca"] if tls else True
            )
        assert info.value.response.status_code == 413
        assert str(info.value) == "Payload too large"
        assert raw.connections == 1

    def test_a_401_sent_before_a_large_body_was_read_refreshes_and_sends_it_again(self, servers):
        cloud = Cloud()
        body = b"x" * LARGE_BODY

        def serve(sock, index):
            if index == 1:  # answers 401 as soon as the head arrives
                head = b""
                while b"\r\n\r\n" not in head:
                    head += sock.recv(65536)
                unauthorized = json.dumps({"detail": "Invalid or expired access token."})
                sock.sendall(raw_response(unauthorized.encode(), "401 Unauthorized"))
                return
            while True:
                request = raw.read(sock)
                if request is None:
                    return
                sock.sendall(cloud(request).serialize())

        raw = servers.raw(serve)
        connection = connect(raw)
        assert connection.request("POST", "/jobs", data=body).json() == {"path": "/jobs"}
        assert [(r.path, r.connection) for r in raw.requests] == [(TOKEN_PATH, 2), ("/jobs", 2)]
        assert raw.requests[1].body == body
        assert raw.requests[1].headers["authorization"] == "Bearer " + cloud.issued[0]

    def test_a_post_whose_reused_socket_died_while_sending_its_body_is_not_sent_twice(
        self, servers
    ):
        def serve(sock, index):
            if index == 1 and raw.read(sock):
                sock.sendall(raw_response(b"{}"))
                head = b""
                while b"\r\n\r\n" not in head:  # then the next head, and no answer
                    head += sock.recv(65536)
                return
            while raw.read(sock):
                sock.sendall(raw_response(b"{}"))

        raw = servers.raw(serve)
        connection = connect(raw)
        assert connection.request("POST", "/jobs", json={"n": 1}).ok
        with pytest.raises(xcc.ConnectionError):
            connection.request("POST", "/jobs/2", data=b"x" * LARGE_BODY)
        assert [(r.connection, r.path) for r in raw.requests] == [(1, "/jobs")]
        assert raw.settled_connections() == 1


# --------------------------------------------------------------------- transport: faults


class TestFaults:
    """Servers that misbehave on purpose: every fault is an xcc exception naming the URL,
    never a short body and never an exception type leaked from http.client or socket."""

    SHORT_BODY = raw_head("200 OK", [("Content-Length", 100)]) + b'{"a": "' + b"x" * 30

    @pytest.mark.parametrize("how", ["request", "content", "json", "text"])
    def test_a_body_shorter_than_content_length_raises(self, servers, how):
        raw = fault_server(servers, self.SHORT_BODY)
        connection = connect(raw)
        with pytest.raises(xcc.RequestException) as info:
            if how == "request":
                connection.request("GET", "/jobs/short")
            else:
                response = connection.request("GET", "/jobs/short", stream=True)
                if how == "json":
                    response.json()
                else:
                    getattr(response, how)  # the content or text property
        assert_names_url(info.value, xcc.ConnectionError, connection.url("/jobs/short"))

    def test_a_body_shorter_than_content_length_raises_while_iterating(self, servers):
        raw = fault_server(servers, self.SHORT_BODY)
        connection = connect(raw)
        response = connection.request("GET", "/jobs/short", stream=True)
        pieces = response.iter_content(16)
        received = [next(pieces), next(pieces)]
        assert b"".join(received) == (b'{"a": "' + b"x" * 30)[:32]
        with pytest.raises(xcc.RequestException) as info:
            received.extend(pieces)
        assert sum(map(len, received)) < 100
        assert_names_url(info.value, xcc.ConnectionError, connection.url("/jobs/short"))

    @pytest.mark.parametrize(
        "body, delivered",
        [
            (b"5\r\nhello\r\nzz\r\nabc\r\n0\r\n\r\n", b"hello"),
            (b"5\r\nhello\r\n-3\r\nabc\r\n0\r\n\r\n", b"hello"),
            (b"a\r\nhello", b"hello"),
            (b"5\r\nhello\r\n", b"hello"),
            (b"3\r\nhello\r\n0\r\n\r\n", b"he"),  # the CRLF after "hel" is checked with its "l"
            (b"5\r\nhello\r\n0\r\nX-Trailer: cut", b"hello"),
            (b" 5\r\nhello\r\n0\r\n\r\n", b""),
            (b"\x0b5\r\nhello\r\n0\r\n\r\n", b""),
            (b"5;a\rb\r\nhello\r\n0\r\n\r\n", b""),
            (b"5;a\x00\r\nhello\r\n0\r\n\r\n", b""),
            (b"5\r\nhello\r\n0\r\nX-Trailer: a\x00b\r\n\r\n", b"hello"),
            (b"5\r\nhello\r\n0\r\n" + (b"X-Trailer: " + b"t" * 40000 + b"\r\n") * 2 + b"\r\n",
             b"hello"),
        ],
        ids=[
            "bad-hex-size",
            "negative-size",
            "closed-mid-chunk",
            "closed-before-last-chunk",
            "chunk-longer-than-size",
            "closed-in-trailers",
            "space-before-size",
            "vt-before-size",
            "cr-in-extension",
            "nul-in-extension",
            "nul-in-trailer",
            "trailers-over-64-kib",
        ],
    )  # fmt: skip
    @pytest.mark.parametrize("stream", [False, True])
    def test_a_broken_chunked_body_raises(self, servers, body, delivered, stream):
        # What a stream yields before the error tells which line the reader refused.
        head = raw_head("200 OK", [("Transfer-Encoding", "chunked")])
        raw = fault_server(servers, head + body)
        connection = connect(raw)
        received = []
        broken = "the chunked body was cut short or broken"
        with pytest.raises(xcc.RequestException, match=broken) as info:
            received.extend(connection.request("GET", "/chunks", stream=stream).iter_content(1))
        assert b"".join(received) == (delivered if stream else b"")
        assert_names_url(info.value, xcc.ConnectionError, connection.url("/chunks"))

    @pytest.mark.parametrize("encoding", sorted(ENCODERS))
    @pytest.mark.parametrize("stream", [False, True])
    @pytest.mark.parametrize(
        "document, kept, chunk_size",
        [(json_lines(), 0.5, 1024), (b"{}", 1, 1)],
        ids=["half-of-the-stream", "its-first-byte"],
    )
    def test_a_truncated_compressed_body_is_cut_short(
        self, servers, encoding, stream, document, kept, chunk_size
    ):
        coding, encode = ENCODERS[encoding]
        encoded = encode(document)
        cut = encoded[: int(len(encoded) * kept) if kept < 1 else kept]
        # The HTTP framing is whole; the compressed stream is not.
        raw = fault_server(servers, raw_response(cut, headers=[("Content-Encoding", coding)]))
        connection = connect(raw)
        error = body_error(connection, "/jobs", stream, chunk_size)
        assert type(error) is xcc.ConnectionError
        url = connection.url("/jobs")
        assert str(error) == f"GET request to '{url}' failed: the {coding} body was cut short"

    def test_a_corrupt_compressed_stream_closes_its_socket(self, servers):
        ended = threading.Event()
        gzip_header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
        body = gzip_header + b"\xff" * 100000  # 0xff: a deflate block of a type that does not exist

        def reply(sock):
            sock.sendall(raw_response(body, headers=[("Content-Encoding", "gzip")]))
            wait_for_close(sock)
            ended.set()

        raw = fault_server(servers, reply)
        connection = connect(raw)
        response = connection.request("GET", "/jobs/1/result", stream=True)
        with pytest.raises(xcc.RequestException) as info:
            b"".join(response.iter_content(1024))
        assert_names_url(info.value, xcc.ConnectionError, connection.url("/jobs/1/result"))
        assert ended.wait(3), "the client kept the socket of a corrupt body open"
        assert response.status_code == 200  # the response is still referenced: not collected

    @pytest.mark.parametrize("stream", [False, True])
    def test_a_connection_reset_mid_body_raises(self, servers, stream):
        proceed = threading.Event()
        if not stream:
            proceed.set()

        def reply(sock):
            sock.sendall(raw_head("200 OK", [("Content-Length", 100000)]) + b"x" * 1000)
            proceed.wait(5)
            # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()

        raw = fault_server(servers, reply)
        connection = connect(raw)
        try:
            with pytest.raises(xcc.RequestException) as info:
                response = connection.request("GET", "/reset", stream=stream)
                proceed.set()
                response.content  # noqa: B018
        finally:
            proceed.set()
        assert_names_url(info.value, xcc.ConnectionError, connection.url("/reset"))

    @pytest.mark.parametrize(
        "reply",
        [
            b"HELLO\r\n\r\n",
            b"SSH-2.0-OpenSSH_9.6\r\n",
            b"HTTP/1.1 abc OK\r\nContent-Length: 0\r\n\r\n",
            b"HTTP/2 200\r\n\r\n",
            b"\x00\x01\x02\x03garbage",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n",
            b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        ],
        ids=[
            "hello",
            "ssh-banner",
            "non-numeric-status",
            "http2",
            "binary",
            "head-cut-short",
            "bad-header-line",
        ],
    )
    def test_an_answer_that_is_not_http_raises(self, servers, reply):
        raw = fault_server(servers, reply)
        connection = connect(raw)
        with pytest.raises(xcc.RequestException) as info:
            connection.request("GET", "/healthz")
        assert_names_url(info.value, xcc.ConnectionError, connection.url("/healthz"))

    @pytest.mark.parametrize("read_first", [True, False], ids=["after-request", "at-once"])
    def test_a_server_closing_without_a_response_raises(self, servers, read_first):
        if read_first:
            raw = fault_server(servers, b"")
        else:
            raw = servers.raw(lambda sock, index: None)
        connection = connect(raw)
        with pytest.raises(xcc.RequestException) as info:
            connection.request("GET", "/jobs")
        assert_names_url(info.value, xcc.ConnectionError, connection.url("/jobs"))

    @pytest.mark.parametrize("value", ["abc", "-1", "5, 6", "1e3", "0x10", "+5"])
    def test_an_invalid_content_length_raises(self, servers, value):
        reply = raw_head("200 OK", [("Content-Length", value)]) + b"hello"
        raw = fault_server(servers, reply)
        connection = connect(raw)
        with pytest.raises(xcc.RequestException) as info:
            connection.request("GET", "/jobs")
        assert_names_url(info.value, xcc.ConnectionError, connection.url("/jobs"))

    @pytest.mark.parametrize(
        "head",
        [
            raw_head("200 OK", [("Content-Length", 10**15)]),
            raw_head("200 OK", [("Content-Length", "9" * 20)]),
            raw_head("200 OK", [("Transfer-Encoding", "chunked")]) + b"F" * 20 + b"\r\n",
        ],
        ids=["content-length-1e15", "content-length-20-digits", "chunk-size-20-hex-digits"],
    )
    @pytest.mark.parametrize("stream", [False, True])
    def test_an_absurd_announced_size_with_a_short_body_raises_connection_error(
        self, servers, head, stream
    ):
        raw = fault_server(servers, head + b'{"a": 1}')
        connection = connect(raw)
        with pytest.raises(xcc.RequestException) as info:
            connection.request("GET", "/huge", stream=stream).content  # noqa: B018
        assert_names_url(info.value, xcc.ConnectionError, connection.url("/huge"))

    @pytest.mark.parametrize("method, kwargs", [("GET", {}), ("POST", {"json": {"n": 1}})])
    def test_a_server_that_never_answers_is_a_read_timeout(self, servers, method, kwargs):
        raw = fault_server(servers, b"", hold=True)
        connection = connect(raw)
        with pytest.raises(xcc.RequestException) as info:
            connection.request(method, "/jobs/slow", timeout=0.3, **kwargs)
        exc = info.value
        assert type(exc) is xcc.ReadTimeout
        assert isinstance(exc, xcc.Timeout)
        assert not isinstance(exc, xcc.ConnectionError)
        assert str(exc) == f"{method} request to '{connection.url('/jobs/slow')}' timed out"
        assert len(raw.requests) == 1

    @pytest.mark.parametrize("stream", [False, True])
    def test_a_server_stalling_mid_body_is_a_read_timeout(self, servers, stream):
        reply = raw_head("200 OK", [("Content-Length", 100)]) + b"0123456789"
        raw = fault_server(servers, reply, hold=True)
        connection = connect(raw)
        with pytest.raises(xcc.RequestException) as info:
            response = connection.request("GET", "/result", stream=stream, timeout=(5, 0.3))
            assert stream, "request() returned without the whole body"
            pieces = response.iter_content(5)
            assert [next(pieces), next(pieces)] == [b"01234", b"56789"]
            next(pieces)
        assert type(info.value) is xcc.ReadTimeout
        assert str(info.value) == f"GET request to '{connection.url('/result')}' timed out"

    def test_a_connect_that_hangs_is_a_connect_timeout(self):
        with blackhole() as port:
            connection = xcc.Connection(
                access_token=ACCESS_TOKEN, host="127.0.0.1", port=port, tls=False
            )
            with pytest.raises(xcc.RequestException) as info:
                connection.request("GET", "/devices", timeout=(0.3, 5))
        exc = info.value
        assert type(exc) is xcc.ConnectTimeout
        assert isinstance(exc, xcc.Timeout)
        assert isinstance(exc, xcc.ConnectionError)
        assert str(exc) == f"GET request to '{connection.url('/devices')}' timed out"

    @pytest.mark.parametrize("dripping", ["the proxy's CONNECT answer", "the TLS handshake"])
    def test_a_server_dripping_its_answer_cannot_stretch_the_connect_timeout(
        self, servers, dripping
    ):
        # One byte every 0.1 s: each read gets a byte well within any per-read timeout.
        if dripping == "the TLS handshake":  # a TLS record header that announces 16 KiB
            drip = b"\x16\x03\x03\x40\x00" + bytes(16384)
        else:
            drip = b"HTTP/1.1 200 Connection established\r\nX-Slow: " + b"a" * 200 + b"\r\n\r\n"

        def serve(sock, index):
            sock.recv(65536)  # the CONNECT, or the ClientHello
            with contextlib.suppress(OSError):
                for byte in drip[:300]:
                    sock.sendall(bytes([byte]))
                    time.sleep(0.1)

        slow = servers.raw(serve)
        proxies = {"https": f"http://127.0.0.1:{slow.port}"}
        port = closed_port() if dripping != "the TLS handshake" else slow.port
        connection = xcc.Connection(access_token=ACCESS_TOKEN, host="127.0.0.1", port=port)
        start = time.monotonic()
        with pytest.raises(xcc.ConnectTimeout):
            connection.request(
                "GET", "/", timeout=(1, 60), proxies=proxies if "proxy" in dripping else None
            )
        assert time.monotonic() - start < 2.5  # 1 s, and some for a loaded machine

    def test_the_connect_timeout_is_one_budget_across_all_addresses(self):
        with blackhole() as first, blackhole() as second:
            addresses = [
                (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("127.0.0.1", port))
                for port in (first, second)
            ]
            start = time.monotonic()
            with pytest.raises(socket.timeout):
                xcc._connect(addresses, start + 0.5)
            elapsed = time.monotonic() - start
        assert 0.4 <= elapsed < 0.9

    @pytest.mark.parametrize("failure", ["refused", "family-not-supported"])
    def test_connect_tries_the_next_address_after_a_failing_one(self, failure):
        # An address family that the kernel does not support (as AF_INET6 where IPv6 is
        # disabled) makes socket() itself fail with EAFNOSUPPORT; 250 is no family at all.
        family = socket.AF_INET if failure == "refused" else 250
        if failure == "family-not-supported":
            with pytest.raises(OSError):
                socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        try:
            kind, protocol = socket.SOCK_STREAM, socket.IPPROTO_TCP
            addresses = [
                (family, kind, protocol, "", ("127.0.0.1", closed_port())),
                (socket.AF_INET, kind, protocol, "", listener.getsockname()),
            ]
            sock = xcc._connect(addresses, time.monotonic() + 5)
            try:
                assert sock.getpeername() == listener.getsockname()
            finally:
                sock.close()
        finally:
            listener.close()

    def test_a_host_that_does_not_resolve_raises_connection_error_naming_it(self):
        connection = xcc.Connection(
            access_token=ACCESS_TOKEN, host="does-not-exist.invalid", port=80, tls=False
        )
        with pytest.raises(xcc.RequestException) as info:
            connection.request("GET", "/healthz", timeout=5)
        assert type(info.value) is xcc.ConnectionError
        assert str(info.value) == "Failed to resolve hostname 'does-not-exist.invalid'"

    def test_a_host_that_is_not_a_valid_idna_name_raises_connection_error_naming_it(self):
        connection = xcc.Connection(access_token=ACCESS_TOKEN, host=".example", port=80, tls=False)
        with pytest.raises(xcc.RequestException) as info:
            connection.request("GET", "/healthz", timeout=5)
        assert type(info.value) is xcc.ConnectionError
        assert str(info.value) == "Failed to resolve hostname '.example'"

    def test_a_refused_port_raises_connection_error_naming_the_url(self):
        connection = xcc.Connection(
            access_token=ACCESS_TOKEN, host="127.0.0.1", port=closed_port(), tls=False
        )
        with pytest.raises(xcc.RequestException) as info:
            connection.request("GET", "/healthz", timeout=5)
        assert_names_url(info.value, xcc.ConnectionError, connection.url("/healthz"))


# --------------------------------------------------------------------- transport: reader

EVIL = raw_response(b"EVIL")  # a whole response, sent where only stray bytes belong
# A server counting characters, not bytes: "é" is two.
CHARACTERS_COUNTED = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhéllo".encode()
CHUNKED_HELLO = raw_head("200 OK", [("Transfer-Encoding", "chunked")]) + chunked([b"hello"])
REDIRECT = raw_head("302 Found", [("Location", "/target"), ("Content-Length", 0)])


def read_body(response, stream):
    """Returns the body of ``response``: ``content``, or ``iter_content(3)`` joined."""
    return b"".join(response.iter_content(3)) if stream else response.content


def outcome(connection, method, path, stream, timeout=(5, 2), **kwargs):
    """Returns the body a request got, or the type of the xcc exception it raised."""
    try:
        response = connection.request(method, path, stream=stream, timeout=timeout, **kwargs)
        return read_body(response, stream)
    except xcc.RequestException as exc:
        return type(exc)


def send_stray_bytes(servers, late, sweep):
    """Requests ``/a`` and ``/b`` (two idle sockets), then ``/one``, whose answer is followed by
    a whole response (``late``: 50 ms after it), then ``/two``; with ``sweep``, a request to
    another server comes before ``/two``. Returns the server."""

    def serve(sock, index):
        while True:
            request = server.read(sock)
            if request is None:
                return
            if request.path != "/one":
                sock.sendall(own_answer(request.path))
            elif late:  # the answer looks whole to every check until the stray bytes come
                sock.sendall(raw_response(b"hello"))
                time.sleep(0.05)
                sock.sendall(EVIL)
            else:
                sock.sendall(raw_response(b"hello") + EVIL)

    server = servers.raw(serve)
    connection = connect(server)
    # Two idle sockets: the other one may have been written beyond its answer too.
    first = connection.request("GET", "/a", stream=True)
    second = connection.request("GET", "/b", stream=True)
    assert (first.content, second.content) == (b"/a", b"/b")
    assert connection.request("GET", "/one").content == b"hello"
    if late:
        time.sleep(0.2)  # the stray bytes reach the idle socket
    if sweep:  # the pool checks every idle socket when another server's comes
        assert connect(servers.paths({})).request("GET", "/other").content == b"/other"
    assert connection.request("GET", "/two").content == b"/two"
    return server


def assert_own_answers(server, connection, stray=True):
    """Asserts that the next requests on ``connection`` get their own answers and, if the
    answer to ``/one`` left ``stray`` bytes, that its socket carried no other request."""
    for path in ("/two", "/three"):
        assert connection.request("GET", path, timeout=(5, 2)).content == path.encode()
    first = [r.connection for r in server.requests if r.path == "/one"]
    later = [r.connection for r in server.requests if r.path in ("/two", "/three")]
    assert first and not (stray and set(first) & set(later)), server.requests


def gzip_bomb(size):
    """Returns ``size`` zero bytes gzipped (about a thousandth of the size)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    block = bytes(1 << 20)
    return b"".join(compressor.compress(block) for _ in range(size >> 20)) + compressor.flush()


# Valid responses that the randomised tests mutate.
MUTATED = [
    raw_response(b'{"status": "online"}', headers=[("Content-Type", "application/json")]),
    raw_head("200 OK", [("Transfer-Encoding", "chunked")]) + chunked([b'{"a": ', b"1}"]),
    raw_response(b"not found", "404 Not Found"),
    raw_response(b"", "204 No Content"),
    raw_response(gzip.compress(b'{"job": 1}'), headers=[("Content-Encoding", "gzip")]),
]
# Responses for the comparison with http.client (which decodes no Content-Encoding): the
# ones above, some read until the server closes, and some that http.client refuses.
DIFFERENTIAL_CASES = MUTATED[:4] + [
    b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end",
    b"HTTP/1.1 200 OK\r\n\r\nno length",
    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
    b"HTTP/1.1 000 Odd\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 1000 Four digits\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/2 200\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n" + b"X-Field: v\r\n" * 101 + b"\r\n",
    b"HTTP/1.1 200 OK\r\nX-Long: " + b"v" * 70000 + b"\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\n" + raw_response(b"after 100"),
    b"",
]
# What mutate() inserts: line ends, separators, digits, and pieces of heads.
INSERTS = [b"\r", b"\n", b"\r\n", b" ", b"\t", b":", b";", b",", b"\x00", b"0", b"7", b"F", b"-",
           b"HTTP/1.1 200 OK\r\n", b"Content-Length: 3\r\n", b"\r\n\r\n"]  # fmt: skip
SEPARATORS = b":\r\n ;,\t"


def mutate(rng, data):
    """Returns ``data`` changed once or twice at random: cut, a piece of it repeated, bytes
    inserted, a digit or a separator changed."""
    for _ in range(rng.randint(1, 2)):
        kind = rng.choice(["cut", "duplicate", "insert", "digit", "separator"])
        at = rng.randrange(len(data) + 1)
        if kind == "cut":
            data = data[:at]
        elif kind == "duplicate":
            end = rng.randint(at, min(len(data), at + 40))
            data = data[:end] + data[at:end] + data[end:]
        elif kind == "insert":
            data = data[:at] + rng.choice(INSERTS) + data[at:]
        else:
            kinds = b"0123456789" if kind == "digit" else SEPARATORS
            places = [i for i, byte in enumerate(data) if byte in kinds]
            if places:
                place = rng.choice(places)
                data = data[:place] + bytes([rng.choice(kinds)]) + data[place + 1 :]
    return data


def http_client_outcome(port, path):
    """Returns ``(status, body)`` as http.client reads the answer to a GET of ``path``, or
    the type of the exception it raised."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    except (http.client.HTTPException, OSError, ValueError) as exc:
        return type(exc)
    finally:
        connection.close()


# A client in its own process: peak RSS growth (ru_maxrss) while it iterates over a body.
# PyPy's collector frees the pieces a loop has dropped only when its own threshold is met,
# and that threshold grows with the machine's cache size and the GC settings: 256 pieces of
# 1 MiB can all be waiting there (PYPY_GC_MIN=400MB shows it on any machine). What the test
# measures is what the client holds, so on PyPy it collects every 4 MiB of output: a client
# that decoded the bomb in one piece would still hold all of it. (Measured on PyPy 7.3.11
# with PYPY_GC_NURSERY from 1 to 100 MB and PYPY_GC_MIN=400MB: at most 13 MiB.)
BOMB_CLIENT = r"""
import gc, resource, sys
sys.path.insert(0, sys.argv[1])
import xcc
connection = xcc.Connection(access_token="a.b.c", host="127.0.0.1", port=int(sys.argv[2]),
                            tls=False)
pypy = sys.implementation.name == "pypy"
for size in map(int, sys.argv[3:]):
    response = connection.request("GET", "/bomb", stream=True)
    gc.collect()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    total = largest = collected = 0
    for piece in response.iter_content(size):
        total += len(piece)
        largest = max(largest, len(piece))
        if pypy and total - collected >= 4 << 20:
            del piece
            gc.collect()
            collected = total
    growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    print(size, total, largest, growth // 1024)
"""


ERROR_BOMB_CLIENT = r"""
import resource, sys
sys.path.insert(0, sys.argv[1])
import xcc
connection = xcc.Connection(access_token="a.b.c", host="127.0.0.1", port=int(sys.argv[2]),
                            tls=False)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    connection.request("GET", "/bomb", stream=True)
except xcc.HTTPError as exc:
    growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    print(exc, growth // 1024)
"""


class TestReader:
    """The response reader: never one request's answer for another's,
    bounded in every dimension. A :class:`loopback.PathServer` answers ``/one`` with exact
    bytes and every later request with its own path, so that any desync shows."""

    @pytest.mark.parametrize(
        "method, reply, expected",
        [
            ("GET", CHARACTERS_COUNTED, "héll".encode()),
            ("GET", raw_response(b"hello") + EVIL, b"hello"),
            ("GET", raw_head("200 OK", [("Content-Length", 4)]) + b"hello", b"hell"),
            ("GET", CHUNKED_HELLO + EVIL, b"hello"),
            ("HEAD", raw_response(b"hello") + EVIL, b""),
            ("GET", raw_head("204 No Content") + EVIL, b""),
            ("GET", raw_head("304 Not Modified") + b"hello", b""),
            # The bytes after a 1xx head are the next head: these are not one.
            (
                "GET",
                raw_response(b"EVIL", "103 Early Hints") + raw_response(b"hello"),
                xcc.ConnectionError,
            ),
            ("GET", REDIRECT + EVIL, b"/target"),
            # An HTTP/1.0 peer may not know chunked (RFC 9112 §6.1): no reuse after it.
            (
                "GET",
                CHUNKED_HELLO.replace(b"HTTP/1.1", b"HTTP/1.0", 1).replace(
                    b"\r\n\r\n", b"\r\nConnection: keep-alive\r\n\r\n", 1
                ),
                b"hello",
            ),
        ],
        ids=[
            "characters-counted-as-bytes",
            "a-whole-response-after-the-body",
            "content-length-one-short",
            "after-a-chunked-body",
            "a-body-on-head",
            "a-body-on-204",
            "a-body-on-304",
            "a-body-on-103",
            "after-a-redirect-followed",
            "chunked-from-http-1.0",
        ],
    )
    @pytest.mark.parametrize("stream", [False, True])
    def test_no_answer_is_ever_read_as_the_next_requests(
        self, servers, method, reply, expected, stream
    ):
        server = servers.paths({"/one": reply})
        connection = connect(server)
        assert outcome(connection, method, "/one", stream) == expected
        assert_own_answers(server, connection)

    @pytest.mark.parametrize(
        "late, sweep",
        [(False, False), (True, False), (True, True)],
        ids=["in-the-same-write", "50-ms-later", "50-ms-later-seen-by-the-sweep"],
    )
    def test_stray_bytes_close_every_idle_socket_to_that_server(self, servers, late, sweep):
        server = send_stray_bytes(servers, late, sweep)
        used = {r.path: r.connection for r in server.requests}
        assert used["/two"] not in (used["/a"], used["/b"]), server.requests

    @pytest.mark.parametrize(
        "late, sweep",
        [(False, False), (True, False), (True, True)],
        ids=["in-the-same-write", "50-ms-later", "50-ms-later-seen-by-the-sweep"],
    )
    def test_the_stray_bytes_line_is_logged_with_the_pool_free(self, servers, late, sweep):
        # A handler that ships each record with a request of its own, from a thread it waits
        # for: under the pool's lock, that request would wait for the lock the logging thread
        # holds (and a handler sending in its own thread would deadlock).
        collector = servers.paths({})
        shipped, blocked = [], []

        class Shipper(logging.Handler):
            def filter(self, record):  # before the handler's lock: the shipping request logs too
                return "Stray bytes" in record.getMessage()

            def emit(self, record):
                ship = threading.Thread(target=lambda: shipped.append(
                    (record.getMessage(), connect(collector).request("GET", "/log").content)
                ))  # fmt: skip
                ship.start()
                ship.join(10)
                blocked.append(ship.is_alive())

        logger, handler = logging.getLogger("xcc"), Shipper()
        level = logger.level
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
        try:
            send_stray_bytes(servers, late, sweep)
        finally:
            logger.removeHandler(handler)
            logger.setLevel(level)
        assert blocked and not any(blocked)  # no shipping request waited for the logging thread
        assert shipped[0][1] == b"/log", shipped
        assert "Stray bytes after a response: closing the " in shipped[0][0]

    @pytest.mark.parametrize("stream", [False, True])
    def test_stray_bytes_held_by_the_tls_layer_are_seen(
        self, servers, tls_context, certificates, stream
    ):
        # The head and body fill the client's 8 KiB read buffer exactly; the rest of the TLS
        # record (a whole response) waits decrypted in OpenSSL, not in the kernel.
        head = raw_head("200 OK", [("Content-Length", 8000)])
        body = b"x" * (8192 - len(head))
        reply = raw_head("200 OK", [("Content-Length", len(body))])
        assert len(reply) == len(head)
        server = servers.paths({"/one": reply + body + EVIL}, tls=tls_context)
        connection = connect(server)
        verify = {"verify": certificates["ca"]}
        assert outcome(connection, "GET", "/one", stream, **verify) == body
        for path in ("/two", "/three"):
            response = connection.request("GET", path, timeout=(5, 2), **verify)
            assert response.content == path.encode()
        assert [r.connection for r in server.requests] == [1, 2, 2]

    def test_threads_sharing_a_connection_never_get_another_requests_answer(self, servers):
        server = servers.unruly(seed=8)
        connection = connect(server)
        barrier = threading.Barrier(8)
        wrong, foreign, answered = [], [], []

        def work(thread):
            barrier.wait(5)
            for i in range(25):
                method = "POST" if i % 2 else "GET"
                path = f"/t{thread}/{method}/{i}"
                try:
                    body = connection.request(method, path, data=b"x", timeout=(5, 5)).content
                except xcc.RequestException:
                    continue  # a reset mid-body: an error, never a wrong answer
                except Exception as exc:  # noqa: BLE001 (reported below)
                    foreign.append(repr(exc))
                    continue
                (answered if body == path.encode() else wrong).append((path, body))

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert wrong == [] and foreign == []
        assert len(answered) > 100
        assert server.events["stray"] > 5 and server.events["reset"] > 5
        posts = [r.path for r in server.requests if r.method == "POST"]
        assert len(posts) == len(set(posts)), "a POST was sent twice"

    def test_rejects_whatever_http_client_rejects_and_reads_the_same_body_otherwise(self, servers):
        rng = random.Random(8)
        cases = DIFFERENTIAL_CASES + [mutate(rng, rng.choice(MUTATED[:4])) for _ in range(300)]

        def serve(sock, index):
            request = raw.read(sock)
            if request is not None:
                sock.sendall(cases[int(request.path[1:])])

        raw = servers.raw(serve)
        connection = connect(raw)
        disagreements, refused, accepted = [], [], []
        for number, case in enumerate(cases):
            theirs = http_client_outcome(raw.port, f"/{number}")
            try:
                response = get_response(connection, "GET", f"/{number}", timeout=(5, 5))
                ours = response.status_code, response.content
            except xcc.RequestException as exc:
                ours = type(exc)
            if isinstance(theirs, type):
                refused.append(number)
                if not isinstance(ours, type):
                    disagreements.append((case, theirs, ours))
            # http.client returns a 1xx other than 100 as the final answer (103 Early
            # Hints included); xcc skips it, as RFC 9110 §15.2 asks.
            elif not isinstance(ours, type) and not 100 <= theirs[0] < 200:
                accepted.append(number)
                if ours != theirs:
                    disagreements.append((case, theirs, ours))
        assert disagreements == []
        assert len(refused) > 50 and len(accepted) > 50  # both sides of the rule were tried

    def test_random_mutations_end_in_time_with_xcc_errors_and_never_desync(self, servers):
        rng = random.Random(8)
        server = servers.paths({})
        connection = connect(server)
        foreign, wrong, slowest = [], [], 0.0
        for number in range(150):
            path = f"/m{number}"
            server.script[path] = mutate(rng, rng.choice(MUTATED))
            if rng.random() < 0.5:
                server.closing.add(path)
            stream = rng.random() < 0.5
            start = time.monotonic()
            try:
                read_body(connection.request("GET", path, stream=stream, timeout=(5, 0.1)), stream)
            except xcc.RequestException:
                pass
            except Exception as exc:  # noqa: BLE001 (reported below)
                foreign.append((server.script[path], repr(exc)))
            slowest = max(slowest, time.monotonic() - start)
            follow = f"/f{number}"
            body = connection.request("GET", follow, timeout=(5, 5)).content
            if body != follow.encode():
                wrong.append((server.script[path], body))
        assert foreign == [] and wrong == []
        assert slowest < 5  # a read timeout of 0.1 s bounds every wait: nothing hangs

    @pytest.mark.parametrize("status", [b"000 Odd", b"099 Low", b"600 High", b"999 Nines"])
    @pytest.mark.parametrize("stream", [False, True])
    def test_a_status_outside_100_to_599_is_not_a_response(self, servers, status, stream):
        server = servers.paths({"/one": b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\n\r\n"})
        connection = connect(server)
        with pytest.raises(xcc.RequestException) as info:
            connection.request("GET", "/one", stream=stream)
        assert_names_url(info.value, xcc.ConnectionError, connection.url("/one"))
        assert repr(b"HTTP/1.1 " + status)[:-1] in str(info.value)
        assert_own_answers(server, connection)

    @pytest.mark.parametrize(
        "status_line", [b"HTTP/1.1\t200 OK", b"HTTP/1.1  200 OK", b"HTTP/1.1 200\tOK",
                        b" HTTP/1.1 200 OK", b"HTTP/1.1 \t200 OK"],
    )  # fmt: skip
    def test_a_status_line_not_split_on_single_spaces_is_refused(self, servers, status_line):
        # h11 and llhttp refuse these too (RFC 9112 §4: version SP status SP reason).
        server = servers.paths({"/one": status_line + b"\r\nContent-Length: 0\r\n\r\n"})
        connection = connect(server)
        with pytest.raises(xcc.ConnectionError, match="not HTTP/1.x|invalid status line"):
            connection.request("GET", "/one")
        assert_own_answers(server, connection)

    @pytest.mark.parametrize(
        "status_line, reason",
        [(b"HTTP/1.1 200", ""), (b"HTTP/1.1 200 ", ""), (b"HTTP/1.1 200 Fine  today ", "Fine  today"),
         (b"HTTP/1.0 200 OK", "OK")],
    )  # fmt: skip
    def test_a_status_line_without_a_reason_is_a_response(self, servers, status_line, reason):
        server = servers.paths({"/one": status_line + b"\r\nContent-Length: 2\r\n\r\nok"})
        response = connect(server).request("GET", "/one")
        assert (response.status_code, response.reason, response.content) == (200, reason, b"ok")

    def test_a_head_of_a_thousand_folded_lines_fails_after_64_kib(self, servers):
        head = b"HTTP/1.1 200 OK\r\nX-Folded: a\r\n" + (b" " + b"a" * 60000 + b"\r\n") * 1000
        finished = threading.Event()
        sent = []

        def serve(sock, index):
            raw.read(sock)
            try:
                sock.sendall(head + b"\r\n")
                sent.append(True)
            except OSError:
                sent.append(False)
            finished.set()

        raw = servers.raw(serve)
        connection = connect(raw)
        with pytest.raises(xcc.RequestException) as info:
            connection.request("GET", "/folded")
        assert_names_url(info.value, xcc.ConnectionError, connection.url("/folded"))
        assert "the response head is larger than 65536 bytes" in str(info.value)
        # The client stopped reading early: 60 MB could not all be sent.
        assert finished.wait(10) and sent == [False]

    @pytest.mark.parametrize(
        "fields, folds, ok",
        [(100, 0, True), (101, 0, False), (2, 98, True), (2, 99, False), (50, 51, False)],
    )
    def test_folded_lines_count_toward_the_100_header_lines(self, servers, fields, folds, ok):
        head = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
        head += b"".join(b"X-Field-%d: v\r\n" % i for i in range(fields - 1))
        head += b" folded\r\n" * folds  # onto the last X-Field
        server = servers.paths({"/one": head + b"\r\nok"})
        connection = connect(server)
        assert outcome(connection, "GET", "/one", False) == (b"ok" if ok else xcc.ConnectionError)
        assert_own_answers(server, connection, stray=False)

    @pytest.mark.parametrize("size, ok", [(65000, True), (66000, False)])
    def test_the_whole_head_is_at_most_64_kib(self, servers, size, ok):
        # Lines of 1000 bytes: each far below any line limit, together above the head's.
        lines = [(f"X-{i:03}", "v" * 993) for i in range(size // 1000)]
        server = servers.paths({"/one": raw_response(b"ok", headers=lines)})
        connection = connect(server)
        assert outcome(connection, "GET", "/one", False) == (b"ok" if ok else xcc.ConnectionError)
        assert_own_answers(server, connection, stray=False)

    @pytest.mark.parametrize("count, ok", [(10, True), (11, False)])
    def test_at_most_ten_interim_responses_are_skipped(self, servers, count, ok):
        interim = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n" * count
        server = servers.paths({"/one": interim + raw_response(b"final")})
        connection = connect(server)
        assert outcome(connection, "GET", "/one", False) == (
            b"final" if ok else xcc.ConnectionError
        )
        assert_own_answers(server, connection, stray=False)

    def test_a_close_after_an_interim_response_is_not_a_stale_socket(self, servers):
        # A stale socket would make a GET go once more: this server did answer.
        server = servers.paths({"/one": b"HTTP/1.1 100 Continue\r\n\r\n"}, closing=["/one"])
        connection = connect(server)
        assert connection.request("GET", "/warm").content == b"/warm"
        with pytest.raises(xcc.RequestException) as info:
            connection.request("GET", "/one")
        assert_names_url(info.value, xcc.ConnectionError, connection.url("/one"))
        assert [r.path for r in server.requests] == ["/warm", "/one"]

    @pytest.mark.parametrize("encoding", sorted(ENCODERS))
    @pytest.mark.parametrize("chunk_size", [1000, 65536])
    def test_decoded_pieces_are_never_larger_than_chunk_size(self, servers, encoding, chunk_size):
        body = bytes(4 << 20)
        coding, encode = ENCODERS[encoding]
        reply = raw_response(encode(body), headers=[("Content-Encoding", coding)])
        server = servers.paths({"/one": reply})
        response = connect(server).request("GET", "/one", stream=True)
        sizes = [len(piece) for piece in response.iter_content(chunk_size)]
        assert sum(sizes) == len(body)
        assert max(sizes) == chunk_size

    @pytest.mark.skipif(
        not sys.platform.startswith("linux"), reason="ru_maxrss is in KiB on Linux only"
    )
    def test_a_gzip_bomb_streams_in_flat_memory(self, servers):
        # 256 MiB of zeros in 256 KiB: a client decoding it in one piece grows by 256 MiB.
        bomb = raw_response(gzip_bomb(256 << 20), headers=[("Content-Encoding", "gzip")])
        server = servers.paths({"/bomb": bomb})
        sizes = ["65536", str(1 << 20)]
        code, out, err = run_python(["-c", BOMB_CLIENT, HERE, str(server.port)] + sizes)
        assert code == 0, err
        for line in out.splitlines():
            size, total, largest, growth = map(int, line.split())
            assert (total, largest) == (256 << 20, size)
            assert growth <= 32, f"peak RSS grew by {growth} MiB over iter_content({size})"

    @pytest.mark.parametrize("stream", [False, True])
    @pytest.mark.parametrize("chunk_size", [1, 4, 1024])
    def test_a_multi_member_gzip_body_is_decoded_whole(self, servers, stream, chunk_size):
        body = gzip.compress(b"hello ") + gzip.compress(b"world")
        reply = raw_response(body, headers=[("Content-Encoding", "gzip")])
        server = servers.paths({"/one": reply})
        response = connect(server).request("GET", "/one", stream=stream)
        assert b"".join(response.iter_content(chunk_size)) == b"hello world"

    @pytest.mark.parametrize("stream", [False, True])
    @pytest.mark.parametrize("chunk_size", [1, 1024])
    def test_zero_padding_after_a_gzip_member_is_ignored_as_gzip_does(
        self, servers, stream, chunk_size
    ):
        body = gzip.compress(b"hello ") + bytes(100) + gzip.compress(b"world") + bytes(7)
        assert gzip.decompress(body) == b"hello world"
        reply = raw_response(body, headers=[("Content-Encoding", "gzip")])
        server = servers.paths({"/one": reply})
        connection = connect(server)
        response = connection.request("GET", "/one", stream=stream)
        assert b"".join(response.iter_content(chunk_size)) == b"hello world"
        assert_own_answers(server, connection, stray=False)

    @pytest.mark.parametrize(
        "codings, encode",
        [
            ("gzip, gzip", lambda data: gzip.compress(gzip.compress(data))),
            ("deflate, gzip", lambda data: gzip.compress(zlib.compress(data))),
            ("gzip, identity, deflate", lambda data: deflate_raw(gzip.compress(data))),
            ("x-gzip,deflate,gzip", lambda data: gzip.compress(zlib.compress(gzip.compress(data)))),
        ],
    )
    @pytest.mark.parametrize("stream", [False, True])
    def test_stacked_codings_are_decoded_in_order(self, servers, codings, encode, stream):
        body = json_lines(2000)
        reply = raw_response(encode(body), headers=[("Content-Encoding", codings)])
        server = servers.paths({"/one": reply})
        connection = connect(server)
        assert outcome(connection, "GET", "/one", stream) == body
        assert connection.request("GET", "/two").content == b"/two"

    @pytest.mark.parametrize(
        "codings, body, message",
        [
            ("gzip, br", gzip.compress(b"{}"), "cannot decode Content-Encoding 'gzip, br'"),
            ("br, gzip", gzip.compress(b"{}"), "cannot decode Content-Encoding 'br, gzip'"),
            (", ".join(["gzip"] * 6), gzip.compress(b"{}"), "at most 5"),
            ("gzip", gzip.compress(b"{}") + b"garbage!", "corrupt gzip body"),
            ("deflate", zlib.compress(b"{}") + b"more", "corrupt deflate body"),
        ],
        ids=["unknown-outer", "unknown-inner", "six-codings", "gzip-trailing", "deflate-trailing"],
    )
    @pytest.mark.parametrize("stream", [False, True])
    def test_a_body_that_cannot_be_decoded_whole_is_refused(
        self, servers, codings, body, message, stream
    ):
        reply = raw_response(body, headers=[("Content-Encoding", codings)])
        server = servers.paths({"/one": reply})
        connection = connect(server)
        with pytest.raises(xcc.RequestException) as info:
            read_body(connection.request("GET", "/one", stream=stream), stream)
        assert_names_url(info.value, xcc.ConnectionError, connection.url("/one"))
        assert message in str(info.value)
        assert connection.request("GET", "/two").content == b"/two"

    def test_a_body_in_a_coding_never_asked_for_is_handed_over_as_sent(self, servers):
        reply = raw_response(b"\x0b\x01\x80{}\x03", headers=[("Content-Encoding", "br")])
        server = servers.paths({"/one": reply})
        assert connect(server).request("GET", "/one").content == b"\x0b\x01\x80{}\x03"

    @pytest.mark.parametrize("value", [b"", b" ", b", "])
    def test_an_empty_content_length_is_refused_as_h11_does(self, servers, value):
        reply = b"HTTP/1.1 200 OK\r\nContent-Length:" + value + b"\r\n\r\nhello"
        server = servers.paths({"/one": reply}, closing=["/one"])
        connection = connect(server)
        with pytest.raises(xcc.RequestException) as info:
            connection.request("GET", "/one", timeout=(5, 2))
        assert_names_url(info.value, xcc.ConnectionError, connection.url("/one"))
        assert "invalid Content-Length" in str(info.value)

    @pytest.mark.parametrize("coding", ["gzip, chunked", "identity", "chunked, chunked"])
    def test_a_transfer_coding_other_than_chunked_is_refused(self, servers, coding):
        reply = raw_head("200 OK", [("Transfer-Encoding", coding)]) + chunked([b"x"])
        server = servers.paths({"/one": reply}, closing=["/one"])
        connection = connect(server)
        with pytest.raises(xcc.RequestException) as info:
            connection.request("GET", "/one")
        assert_names_url(info.value, xcc.ConnectionError, connection.url("/one"))
        assert f"unsupported Transfer-Encoding {coding!r}" in str(info.value)

    @pytest.mark.parametrize(
        "line",
        [
            b"Content-Length : 5",
            b"\x0bContent-Length: 5",
            b"Content Length: 5",
            b": no-name",
            b"X-Value: a\rb",
            b"X-Value: a\x00b",
            b"X-Value: a\x01b",
            b"X-Value: ab\r",
            b"X-Folded: a\r\n \x00b",
            b" X-Folded: a",
        ],
        ids=["space-before-colon", "vt-before-name", "space-in-name", "empty-name", "cr",
             "nul", "control", "cr-before-crlf", "nul-in-folded-line", "fold-without-field"],
    )  # fmt: skip
    @pytest.mark.parametrize("stream", [False, True])
    def test_a_malformed_field_is_refused(self, servers, line, stream):
        reply = b"HTTP/1.1 200 OK\r\n" + line + b"\r\nContent-Length: 5\r\n\r\nhello"
        server = servers.paths({"/one": reply})
        connection = connect(server)
        with pytest.raises(xcc.RequestException) as info:
            connection.request("GET", "/one", stream=stream)
        assert_names_url(info.value, xcc.ConnectionError, connection.url("/one"))
        shown = repr(line.split(b"\r\n")[-1])[2:-1]  # the bad line, as the message shows it
        assert f"invalid header line b'{shown}" in str(info.value)
        assert_own_answers(server, connection)

    @pytest.mark.parametrize("reason", [b"O\x00K", b"OK\r", b"O\x1bK"])
    def test_a_status_line_with_a_control_character_is_refused(self, servers, reason):
        server = servers.paths(
            {"/one": b"HTTP/1.1 200 " + reason + b"\r\nContent-Length: 0\r\n\r\n"}
        )
        connection = connect(server)
        assert outcome(connection, "GET", "/one", False) is xcc.ConnectionError
        assert_own_answers(server, connection)

    @pytest.mark.parametrize(
        "interim",
        [
            b"HTTP/1.1 100 Continue\r\nxHTTP/1.1 200 OK\r\n\r\n",
            b"HTTP/1.1 100 Continue\r\n Content-Length: 0\r\n\r\n",
            b"HTTP/1.1 103 Early Hints\r\nLink : </a>\r\n\r\n",
            b"HTTP/1.1 100 Continue\r\n: x\r\n\r\n",
        ],
        ids=["no-colon", "fold-without-field", "space-before-colon", "empty-name"],
    )
    def test_an_interim_head_with_a_malformed_field_is_refused(self, servers, interim):
        reply = interim + b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        server = servers.paths({"/one": reply})
        connection = connect(server)
        with pytest.raises(xcc.ConnectionError, match="invalid header line"):
            connection.request("GET", "/one")
        assert_own_answers(server, connection)

    @pytest.mark.parametrize(
        "template",
        [
            b"HTTP/1.1 200 OK\r\nX-Echo: Bearer %s\x00\r\nContent-Length: 0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nX-Echo Bearer %s\r\nContent-Length: 0\r\n\r\n",
            b"HTTP/1.1 2x0 Bearer %s\r\nContent-Length: 0\r\n\r\n",
            b"HTTP/9 200 %s\r\nContent-Length: 0\r\n\r\n",
        ],
        ids=["control-character", "no-colon", "status-code", "version"],
    )
    def test_a_token_echoed_in_a_refused_line_shows_no_part_of_it(self, servers, template):
        # The message shows the start of the line: masked before it is cut, no prefix of
        # the token is left there to read.
        server = servers.paths({"/one": template % ACCESS_TOKEN.encode()})
        connection = connect(server)
        with pytest.raises(xcc.ConnectionError) as info:
            connection.request("GET", "/one")
        assert "[token]" in str(info.value)
        assert_not_leaked(everything_shown(info.value), ACCESS_TOKEN[:12], ACCESS_TOKEN[12:24])


# ------------------------------------------------------------------ transport: redirects

CODES = (301, 302, 303, 307, 308)
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")
# requests' rules: 302/303 -> GET for all but HEAD; 301 turns only POST into GET.
SAME = {method: method for method in METHODS}
TO_GET = dict(SAME, POST="GET", PUT="GET", PATCH="GET", DELETE="GET")
REDIRECTED_METHOD = {301: dict(SAME, POST="GET"), 302: TO_GET, 303: TO_GET, 307: SAME, 308: SAME}
REDIRECT_BODY = {"job": "é", "shots": 3}
CREDENTIALS = {"Cookie": "session=c00kie", "Proxy-Authorization": "Basic cHJveHk6cGFzcw=="}


@pytest.fixture
def pair(servers):
    """Two scripted servers: two origins (same host, different ports)."""
    return servers.http(), servers.http()


def hop_handler(limit):
    """Redirects ``/hop/N`` to ``/hop/N+1`` while ``N < limit``, then answers 200."""

    def handler(request):
        number = int(request.path.rsplit("/", 1)[1])
        if number < limit:
            return Reply(302, headers=[("Location", f"/hop/{number + 1}")])
        return json_reply(200, {"hops": number})

    return handler


class TestRedirects:
    @pytest.mark.parametrize("where", ["same-absolute", "same-relative", "cross-origin"])
    @pytest.mark.parametrize("method", METHODS)
    @pytest.mark.parametrize("code", CODES)
    def test_redirect_follows_requests_method_body_and_credential_rules(
        self, pair, code, method, where
    ):
        front, other = pair
        cross = where == "cross-origin"
        downstream = other if cross else front
        location = {
            "same-absolute": front.url + "/r/end",
            "same-relative": "end",  # relative to /r/start
            "cross-origin": other.url + "/r/end",
        }[where]

        def handler(request):
            if request.path == "/r/start":
                return Reply(code, headers=[("Location", location)])
            return Reply(200)

        front.handler = other.handler = handler
        response = connect(front).request(
            method, "/r/start", json=REDIRECT_BODY, headers=dict(CREDENTIALS)
        )

        assert response.status_code == 200
        assert response.url == downstream.url + "/r/end"
        assert [r.path for r in front.requests] == ["/r/start"] + ([] if cross else ["/r/end"])
        assert [r.path for r in other.requests] == (["/r/end"] if cross else [])
        first, final = front.requests[0], downstream.requests[-1]
        sent = json.dumps(REDIRECT_BODY).encode("utf-8")
        assert (first.method, first.body) == (method, sent)
        assert first.headers["authorization"] == "Bearer " + ACCESS_TOKEN

        assert final.method == REDIRECTED_METHOD[code][method]
        if code in (307, 308):
            assert final.body == sent
            assert final.headers["content-type"] == "application/json"
            assert final.headers["content-length"] == str(len(sent))
        else:
            assert final.body == b""
            assert "content-type" not in final.headers
            if final.method in ("GET", "HEAD"):
                assert "content-length" not in final.headers
            else:
                assert final.headers["content-length"] == "0"
        if cross:
            for name in ("authorization", "cookie", "proxy-authorization"):
                assert name not in final.headers
        else:
            assert final.headers["authorization"] == "Bearer " + ACCESS_TOKEN
            assert final.headers["cookie"] == CREDENTIALS["Cookie"]
            assert final.headers["proxy-authorization"] == CREDENTIALS["Proxy-Authorization"]

    @pytest.mark.parametrize("code", CODES)
    def test_allow_redirects_false_returns_the_redirect_unfollowed(self, pair, code):
        front, other = pair
        front.handler = lambda request: Reply(code, headers=[("Location", other.url + "/x")])
        response = connect(front).request("POST", "/r/start", json={}, allow_redirects=False)
        assert response.status_code == code
        assert response.headers["location"] == other.url + "/x"
        assert response.url == front.url + "/r/start"
        assert len(front.requests) == 1
        assert other.requests == []

    def test_thirty_redirects_are_followed(self, pair):
        front, _ = pair
        front.handler = hop_handler(30)
        response = connect(front).request("GET", "/hop/0")
        assert response.json() == {"hops": 30}
        assert response.url == front.url + "/hop/30"
        assert [r.path for r in front.requests] == [f"/hop/{n}" for n in range(31)]

    def test_thirty_one_redirects_raise_too_many_redirects_with_the_response(self, pair):
        front, _ = pair
        front.handler = hop_handler(10**6)
        with pytest.raises(xcc.TooManyRedirects) as info:
            connect(front).request("GET", "/hop/0")
        assert isinstance(info.value, xcc.RequestException)
        assert info.value.response is not None
        assert info.value.response.status_code == 302
        assert len(front.requests) == 31  # the request and 30 redirects, as requests

    def test_response_url_is_the_final_url_after_a_cross_origin_redirect(self, pair):
        front, other = pair
        front.handler = lambda request: Reply(301, headers=[("Location", other.url + "/b?x=1")])
        other.handler = lambda request: json_reply(200, {"at": request.target})
        response = connect(front).request("GET", "/a")
        assert response.json() == {"at": "/b?x=1"}
        assert response.url == other.url + "/b?x=1"

    def test_401_after_cross_origin_redirect_raises_without_refresh_or_retry(self, pair):
        front, other = pair
        to_other = lambda request: Reply(302, headers=[("Location", other.url + "/jobs")])
        front.handler = Cloud(routes={"/jobs": to_other})
        other.handler = Cloud(valid=(), routes={})  # 401 for every token, has a token endpoint
        with pytest.raises(xcc.HTTPError) as info:
            connect(front).request("GET", "/jobs")
        assert info.value.response.status_code == 401
        assert info.value.response.url == other.url + "/jobs"
        assert [r.path for r in front.requests] == ["/jobs"]
        assert [r.path for r in other.requests] == ["/jobs"]
        assert "authorization" not in other.requests[0].headers

    def test_401_after_a_redirect_chain_back_to_the_origin_raises_without_refresh(self, pair):
        front, other = pair
        to_other = lambda request: Reply(307, headers=[("Location", other.url + "/bounce")])
        front.handler = Cloud(routes={"/start": to_other})  # 401 without a token
        other.handler = lambda request: Reply(307, headers=[("Location", front.url + "/final")])
        with pytest.raises(xcc.HTTPError) as info:
            connect(front).request("POST", "/start", json={"n": 1})
        assert info.value.response.status_code == 401
        assert info.value.response.url == front.url + "/final"
        # The credentials left with the first hop: back at the origin, none are sent, no
        # token is fetched and nothing is sent again.
        assert [(r.method, r.path) for r in front.requests] == [
            ("POST", "/start"),
            ("POST", "/final"),
        ]
        assert [(r.method, r.path) for r in other.requests] == [("POST", "/bounce")]
        assert "authorization" not in front.requests[1].headers

    def test_a_utf8_location_is_percent_encoded_as_utf8(self, server):
        def handler(request):
            if request.path == "/start":
                # The UTF-8 bytes of "/café", as servers send them (raw_head writes Latin-1).
                return raw_response(b"", "302 Found", [("Location", "/caf\xc3\xa9")])
            return Reply(200)

        server.handler = handler
        response = connect(server).request("GET", "/start")
        assert [r.target for r in server.requests] == ["/start", "/caf%C3%A9"]
        assert response.url == server.url + "/caf%C3%A9"

    def test_a_redirect_to_a_host_name_that_is_not_idna_raises_request_exception(self, server):
        server.handler = lambda request: Reply(302, headers=[("Location", "http://a..b/next")])
        with pytest.raises(xcc.RequestException) as info:
            connect(server).request("GET", "/start", timeout=5)
        assert type(info.value) is xcc.RequestException
        assert "http://a..b/next" in str(info.value)
        assert info.value.response.status_code == 302
        assert [r.path for r in server.requests] == ["/start"]

    @pytest.mark.parametrize("charset", ["utf-8", "latin-1"])
    def test_a_redirect_to_an_idn_host_is_idna_encoded(self, server, charset):
        location = "http://\u00e9xample.invalid/next".encode(charset).decode("latin-1")
        server.handler = lambda request: raw_response(b"", "302 Found", [("Location", location)])
        with pytest.raises(xcc.RequestException) as info:
            connect(server).request("GET", "/start", timeout=5)
        assert type(info.value) is xcc.ConnectionError
        assert str(info.value) == "Failed to resolve hostname 'xn--xample-9ua.invalid'"

    # (A control character such as "\x0b" in Location never gets here: the reader refuses
    # the whole head, see TestReader.)
    @pytest.mark.parametrize("host", ["evil x", "evil%20x", "a;b", "a<b>"])
    @pytest.mark.parametrize("route", ["direct", "forwarding-proxy", "tunnel"])
    def test_a_redirect_to_an_invalid_host_is_refused_before_anything_is_sent(
        self, servers, tls_context, certificates, route, host
    ):
        tunnel = route == "tunnel"
        location = f"{'https' if tunnel else 'http'}://{host}:1/next"
        server = servers.http(
            lambda request: Reply(302, headers=[("Location", location)]),
            tls=tls_context if tunnel else None,
        )
        proxy = servers.proxy()
        proxies = None if route == "direct" else {"http": proxy.url(), "https": proxy.url()}
        with pytest.raises(xcc.RequestException) as info:
            connect(server).request(
                "GET", "/start", timeout=5, proxies=proxies, verify=certificates["ca"]
            )
        assert type(info.value) is xcc.RequestException
        assert repr(location) in str(info.value)
        assert info.value.response.status_code == 302
        assert [r.path for r in server.requests] == ["/start"]
        expected = {
            "direct": [],
            "forwarding-proxy": [f"GET {server.url}/start HTTP/1.1"],
            "tunnel": [f"CONNECT 127.0.0.1:{server.port} HTTP/1.1"],
        }[route]
        assert [r.request_line for r in proxy.requests] == expected


# ------------------------------------------------------------------- Connection: secrets

OTHER_REFRESH = make_jwt(int(time.time()) + 86400, "another-refresh")
BAD_NEW_TOKEN = "new-" + MARK + "\n token"
# Credentials that the caller sends in its own Authorization or Proxy-Authorization.
CALLER_TOKEN = make_jwt(int(time.time()) + 3600, "the-callers-own-token")
CALLER_PASSWORD = "callers-Own-Password-4e1d"
CALLER_BASIC = "Basic " + base64.b64encode(b"caller:" + CALLER_PASSWORD.encode()).decode()


def secrets_of(*extra):
    """The values that must never be shown, and the payload segment of each JWT (so that
    a token cut short is caught too)."""
    values = [REFRESH_TOKEN, ACCESS_TOKEN, OTHER_REFRESH, PROXY_PASSWORD, PROXY_PASSWORD_IN_URL,
              PROXY_AUTHORIZATION[6:], MARK, CALLER_TOKEN, CALLER_PASSWORD,
              CALLER_BASIC[6:]] + list(extra)  # fmt: skip
    return values + [value.split(".")[1] for value in values if value.count(".") == 2]


def assert_not_leaked_in_any_case(text, *secrets):
    """Asserts that none of ``secrets`` appears in ``text``, in any case: a host comes back
    lower-cased, and a server may change the case of what it echoes."""
    assert_not_leaked(text.lower(), *[secret.lower() for secret in secrets])


def module_locals(error):
    """The locals of this module's frames in the traceback of ``error`` and of its chained
    causes and contexts, as ``capture_locals=True`` shows them (``pytest --showlocals``,
    error trackers). The test's own frames are left out: they hold the test's secrets."""
    texts, todo = [], [traceback.TracebackException(type(error), error, error.__traceback__,
                                                    capture_locals=True)]  # fmt: skip
    while todo:
        shown = todo.pop()
        if shown is not None:
            for frame in shown.stack:
                if os.path.basename(frame.filename) == "xcc.py":
                    texts.append(f"{frame.name}: {frame.locals!r}")
            todo += [shown.__cause__, shown.__context__]
    return "\n".join(texts)


def everything_shown(error):
    """The texts a user or a log may see of an exception: str, repr, the whole formatted
    traceback (with its chained causes), the locals of this module's frames in it, and its
    response's repr and URL."""
    texts = [str(error), repr(error), "".join(traceback.format_exception(type(error), error,
             error.__traceback__)), module_locals(error)]  # fmt: skip
    response = getattr(error, "response", None)
    if response is not None:
        texts += [repr(response), response.url, response.reason]
    return "\n".join(texts)


def reachable_texts(root):
    """The strings (and bytes) a user can reach from ``root``, such as an exception:
    messages and arguments, chained causes and contexts, attributes of objects and slots,
    the items of containers, recursively, a response's header fields and body included (an
    error's are masked). Left out: sockets and files, whose buffers hold the wire's bytes."""
    texts, seen, todo = [], set(), [root]
    while todo:
        obj = todo.pop()
        if obj is None or id(obj) in seen or isinstance(obj, (socket.socket, io.IOBase)):
            continue
        seen.add(id(obj))
        if isinstance(obj, (str, bytes)):
            texts.append(obj.decode("latin-1") if isinstance(obj, bytes) else obj)
            continue
        if isinstance(obj, BaseException):
            texts += [str(obj), repr(obj)]
            todo += [obj.__cause__, obj.__context__, *obj.args]
        if isinstance(obj, dict):
            todo += list(obj.items())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            todo += list(obj)
        if isinstance(obj, xcc.Response):
            todo.append(dict(obj.headers))
        if hasattr(obj, "__dict__"):
            todo += list(vars(obj).values())
        for cls in type(obj).__mro__:
            todo += [getattr(obj, slot, None) for slot in getattr(cls, "__slots__", ())]
    return "\n".join(texts)


def scenario_404_without_detail(servers, tls_context, issued):
    server = servers.http(lambda request: Reply(404, b"no json here"))
    connect(server).request("GET", "/missing")


def scenario_500_with_detail(servers, tls_context, issued):
    server = servers.http(lambda request: json_reply(500, {"detail": "Internal failure."}))
    connect(server).request("GET", "/jobs")


def scenario_detail_echoes_the_tokens(servers, tls_context, issued):
    detail = f"rejected {ACCESS_TOKEN} and {REFRESH_TOKEN}"
    server = servers.http(lambda request: json_reply(403, {"detail": detail}))
    connect(server).request("GET", "/jobs")


def scenario_validation_error_echoes_the_token(servers, tls_context, issued):
    body = {"code": "validation-error", "meta": {"token": ["bad " + ACCESS_TOKEN]}}
    server = servers.http(lambda request: json_reply(400, body))
    connect(server).request("POST", "/jobs", json={})


def scenario_detail_echoes_the_refreshed_token(servers, tls_context, issued):
    echo = lambda request: json_reply(403, {"detail": "sent " + request.headers["authorization"]})
    cloud = Cloud(valid=(), routes={"/jobs": echo})
    cloud.issued = issued  # the tokens it hands out are secrets too
    connect(servers.http(cloud)).request("GET", "/jobs")


def scenario_stream_detail_echoes_the_token(servers, tls_context, issued):
    detail = f"rejected {ACCESS_TOKEN}"
    server = servers.http(lambda request: json_reply(409, {"detail": detail}))
    connect(server).request("GET", "/jobs", stream=True)


def scenario_refresh_invalid_grant(servers, tls_context, issued):
    server = servers.http(Cloud(valid=()))
    connect(server, refresh_token=OTHER_REFRESH).request("GET", "/jobs")


def scenario_refresh_before_sending_fails(servers, tls_context, issued):
    server = servers.http(lambda request: json_reply(503, {"detail": "down " + REFRESH_TOKEN}))
    connect(server, access_token=None).request("GET", "/jobs")


def scenario_token_response_holds_a_bad_token(servers, tls_context, issued):
    server = servers.http(lambda request: json_reply(200, {"access_token": BAD_NEW_TOKEN}))
    connect(server, access_token=None).request("GET", "/jobs")


def scenario_connection_refused(servers, tls_context, issued):
    xcc.Connection(REFRESH_TOKEN, ACCESS_TOKEN, "127.0.0.1", closed_port(), False).request(
        "GET", "/"
    )


def scenario_read_timeout(servers, tls_context, issued):
    def silent(sock, index):
        server.read(sock)
        sock.recv(1)  # until the test ends

    server = servers.raw(silent)
    connect(server).request("GET", "/slow", timeout=0.3)


def scenario_ssl_error(servers, tls_context, issued):
    server = servers.raw(lambda sock, index: sock.recv(1), tls=tls_context)
    connect(server).request("GET", "/")


def scenario_too_many_redirects(servers, tls_context, issued):
    server = servers.http(lambda request: Reply(302, headers=[("Location", "/loop")]))
    connect(server).request("GET", "/loop")


def request_through(proxy):
    """Sends a request through ``proxy`` with the test's proxy credentials."""
    connection = xcc.Connection(REFRESH_TOKEN, ACCESS_TOKEN, "127.0.0.1", closed_port(), True)
    connection.request("GET", "/", proxies={"https": proxy.url(PROXY_USER, PROXY_PASSWORD)})


def scenario_proxy_refuses_the_tunnel(servers, tls_context, issued):
    request_through(servers.proxy(refuse=403))


def scenario_proxy_wants_other_credentials(servers, tls_context, issued):
    request_through(servers.proxy(credentials=(PROXY_USER, "the-right-one")))


def scenario_header_holding_the_token_and_a_newline(servers, tls_context, issued):
    server = servers.http()
    connect(server).request("GET", "/", headers={"Authorization": f"Bearer {ACCESS_TOKEN}\n"})


def scenario_token_endpoint_reason_echoes_the_api_key(servers, tls_context, issued):
    echo = lambda request: raw_response(b"", "400 bad " + request.body.decode())
    connect(servers.http(echo), access_token=None).request("GET", "/jobs")


def scenario_redirect_location_echoes_the_token(servers, tls_context, issued):
    def handler(request):
        location = "http://a..b/?t=" + request.headers["authorization"][len("Bearer ") :]
        return Reply(302, headers=[("Location", location)])

    connect(servers.http(handler)).request("GET", "/")


def scenario_forwarding_proxy_407_echoes_the_token(servers, tls_context, issued):
    echo = lambda request: Reply(407, reason="no " + request.headers["authorization"])
    proxy = servers.http(echo)  # a forwarding proxy reads the request, token included
    connection = xcc.Connection(REFRESH_TOKEN, ACCESS_TOKEN, "127.0.0.1", closed_port(), False)
    connection.request("GET", "/", proxies={"http": proxy.url})


def scenario_error_headers_echo_the_token(servers, tls_context, issued):
    echo = lambda request: json_reply(
        403,
        {"detail": "no"},
        [("Set-Cookie", "s=" + ACCESS_TOKEN), ("X-Echo", request.headers["authorization"])],
    )
    connect(servers.http(echo)).request("GET", "/jobs")


def scenario_token_endpoint_body_echoes_the_form(servers, tls_context, issued):
    echo = lambda request: json_reply(
        400,
        {"error": "invalid_request", "got": request.body.decode()},
        [("Set-Cookie", "k=" + REFRESH_TOKEN)],
    )
    connect(servers.http(echo), access_token=None).request("GET", "/jobs")


def scenario_error_after_a_redirect_to_a_location_holding_the_token(servers, tls_context, issued):
    def handler(request):
        if request.path == "/a":
            location = "/b?echo=" + request.headers["authorization"][len("Bearer ") :]
            return Reply(302, headers=[("Location", location)])
        return json_reply(404, {"detail": "none"}, [("Link", "</a>; rel=" + ACCESS_TOKEN)])

    connect(servers.http(handler)).request("GET", "/a")


def echo_credentials(request):
    """What a server that repeats the credentials it was sent answers: a 403 whose
    ``detail``, headers and body hold each header value, its Base64 part decoded."""
    echoed = []
    for name in ("authorization", "proxy-authorization"):
        value = request.headers.get(name, "")
        scheme, _, credentials = value.partition(" ")
        decoded = base64.b64decode(credentials).decode() if scheme == "Basic" else ""
        echoed += [value, decoded, value.upper()]
    detail = " / ".join(echoed)
    return json_reply(403, {"detail": detail, "echo": echoed}, [("X-Echo", detail)])


def redirect_then_echo_credentials(request):
    """Redirects to a Location that holds the credentials sent, then echoes them."""
    if request.path == "/a":
        value = request.headers.get("authorization") or request.headers["proxy-authorization"]
        return Reply(302, headers=[("Location", "/b?echo=" + value.partition(" ")[2])])
    return echo_credentials(request)


def scenario_detail_echoes_the_callers_authorization(servers, tls_context, issued):
    server = servers.http(redirect_then_echo_credentials)
    connect(server, headers={"authorization": "Bearer " + CALLER_TOKEN}).request("GET", "/a")


def scenario_detail_echoes_a_per_request_basic_authorization(servers, tls_context, issued):
    server = servers.http(redirect_then_echo_credentials)
    connect(server).request("GET", "/a", headers={"AUTHORIZATION": CALLER_BASIC})


def scenario_detail_echoes_the_callers_proxy_authorization(servers, tls_context, issued):
    server = servers.http(redirect_then_echo_credentials)
    connect(server).request("GET", "/a", headers={"Proxy-Authorization": CALLER_BASIC})


def scenario_origin_echoes_the_proxy_credentials_forwarded_to_it(servers, tls_context, issued):
    proxy = servers.proxy((PROXY_USER, PROXY_PASSWORD), pass_credentials=True)
    origin = servers.http(echo_credentials)
    proxies = {"http": proxy.url(PROXY_USER, PROXY_PASSWORD)}
    connect(origin, access_token=None).request("GET", "/jobs", proxies=proxies)


def scenario_detail_echoes_the_tokens_in_another_case(servers, tls_context, issued):
    detail = f"rejected {ACCESS_TOKEN.upper()} and {REFRESH_TOKEN.swapcase()}"
    server = servers.http(lambda request: json_reply(403, {"detail": detail}))
    connect(server).request("GET", "/jobs")


def scenario_redirect_to_a_host_holding_the_token(servers, tls_context, issued):
    def handler(request):
        token = request.headers["authorization"][len("Bearer ") :]
        return Reply(302, headers=[("Location", f"http://{token}.example/next")])

    connect(servers.http(handler)).request("GET", "/")


def scenario_constructor_refuses_a_bad_access_token(servers, tls_context, issued):
    xcc.Connection(REFRESH_TOKEN, MARK + "\r\ntoken", headers={"Authorization": CALLER_BASIC})


def scenario_constructor_refuses_a_bad_host(servers, tls_context, issued):
    xcc.Connection(REFRESH_TOKEN, ACCESS_TOKEN, "bad host", headers={"Authorization": CALLER_BASIC})


def scenario_constructor_fails_after_its_checks(servers, tls_context, issued):
    class Name(str):  # its third lower() fails: after the checks, with the headers in hand
        calls = 0

        def lower(self):
            self.calls += 1
            if self.calls > 2:
                raise ValueError("lower() failed")
            return str.lower(self)

    xcc.Connection(REFRESH_TOKEN, ACCESS_TOKEN, headers={Name("Authorization"): CALLER_BASIC})


def scenario_load_refuses_a_bad_setting(servers, tls_context, issued):
    settings = f"XANADU_CLOUD_REFRESH_TOKEN={REFRESH_TOKEN}\nXANADU_CLOUD_TLS=maybe\n"
    write_home_dotenv(os.environ["HOME"], settings)
    xcc.Connection.load(headers={"Authorization": CALLER_BASIC})


def scenario_request_refuses_a_bad_timeout(servers, tls_context, issued):
    proxies = {"http": f"http://{PROXY_USER}:{PROXY_PASSWORD_IN_URL}@127.0.0.1:1"}
    headers = {"Authorization": CALLER_BASIC}
    connect(servers.http()).request("GET", "/", timeout=-1, proxies=proxies, headers=headers)


def scenario_update_access_token_fails(servers, tls_context, issued):
    echo = lambda request: json_reply(503, {"detail": "down"}, [("X-Form", request.body.decode())])
    connect(servers.http(echo), access_token=None).update_access_token()


def scenario_ping_fails(servers, tls_context, issued):
    echo = lambda request: json_reply(503, {"detail": request.headers["authorization"]})
    connect(servers.http(echo)).ping()


SCENARIOS = [
    (scenario_detail_echoes_the_callers_authorization, xcc.HTTPError),
    (scenario_detail_echoes_a_per_request_basic_authorization, xcc.HTTPError),
    (scenario_detail_echoes_the_callers_proxy_authorization, xcc.HTTPError),
    (scenario_origin_echoes_the_proxy_credentials_forwarded_to_it, xcc.HTTPError),
    (scenario_detail_echoes_the_tokens_in_another_case, xcc.HTTPError),
    (scenario_redirect_to_a_host_holding_the_token, xcc.RequestException),
    (scenario_constructor_refuses_a_bad_access_token, ValueError),
    (scenario_constructor_refuses_a_bad_host, ValueError),
    (scenario_constructor_fails_after_its_checks, ValueError),
    (scenario_load_refuses_a_bad_setting, ValueError),
    (scenario_request_refuses_a_bad_timeout, ValueError),
    (scenario_update_access_token_fails, xcc.HTTPError),
    (scenario_ping_fails, xcc.HTTPError),
    (scenario_404_without_detail, xcc.HTTPError),
    (scenario_500_with_detail, xcc.HTTPError),
    (scenario_detail_echoes_the_tokens, xcc.HTTPError),
    (scenario_validation_error_echoes_the_token, xcc.HTTPError),
    (scenario_detail_echoes_the_refreshed_token, xcc.HTTPError),
    (scenario_stream_detail_echoes_the_token, xcc.HTTPError),
    (scenario_refresh_invalid_grant, xcc.HTTPError),
    (scenario_refresh_before_sending_fails, xcc.HTTPError),
    (scenario_token_response_holds_a_bad_token, ValueError),
    (scenario_connection_refused, xcc.ConnectionError),
    (scenario_read_timeout, xcc.Timeout),
    (scenario_ssl_error, xcc.SSLError),
    (scenario_too_many_redirects, xcc.TooManyRedirects),
    (scenario_proxy_refuses_the_tunnel, xcc.ProxyError),
    (scenario_proxy_wants_other_credentials, xcc.ProxyError),
    (scenario_header_holding_the_token_and_a_newline, ValueError),
    (scenario_token_endpoint_reason_echoes_the_api_key, xcc.HTTPError),
    (scenario_redirect_location_echoes_the_token, xcc.RequestException),
    (scenario_forwarding_proxy_407_echoes_the_token, xcc.ProxyError),
    (scenario_error_headers_echo_the_token, xcc.HTTPError),
    (scenario_token_endpoint_body_echoes_the_form, xcc.HTTPError),
    (scenario_error_after_a_redirect_to_a_location_holding_the_token, xcc.HTTPError),
]

BAD_TOKENS = [
    MARK + "\nabc", MARK + "\r\n", MARK + "\tabc", MARK + "\x00", MARK + "\x7f", MARK + "\x1b",
    MARK + "\u20ac",
]  # fmt: skip


class TestSecrets:
    @pytest.mark.parametrize(
        "scenario, expected", SCENARIOS, ids=[s.__name__[len("scenario_") :] for s, _ in SCENARIOS]
    )
    def test_no_error_shows_a_token_or_password(self, servers, tls_context, scenario, expected):
        issued = []
        with pytest.raises(expected) as info:
            scenario(servers, tls_context, issued)
        shown = everything_shown(info.value) + reachable_texts(info.value)
        if scenario is scenario_detail_echoes_the_refreshed_token:
            assert len(issued) == 1  # the token was refreshed, and the server echoed the new one
        assert_not_leaked_in_any_case(shown, *secrets_of(*issued))

    @pytest.mark.parametrize(
        "scenario",
        [scenario_detail_echoes_the_callers_authorization,
         scenario_detail_echoes_a_per_request_basic_authorization,
         scenario_detail_echoes_the_callers_proxy_authorization],
    )  # fmt: skip
    def test_the_callers_own_credentials_are_masked_like_the_tokens(self, servers, scenario):
        with pytest.raises(xcc.HTTPError) as info:
            scenario(servers, None, [])
        error = info.value
        assert error.response.url.endswith("/b?echo=[token]")
        assert error.response.status_code == 403
        assert "[token] / " in str(error)
        assert error.response.headers["X-Echo"] == str(error).rstrip()
        assert_not_leaked_in_any_case(everything_shown(error) + reachable_texts(error),
                                      *secrets_of())  # fmt: skip

    def test_proxy_credentials_that_the_origin_echoes_are_masked(self, servers):
        with pytest.raises(xcc.HTTPError) as info:
            scenario_origin_echoes_the_proxy_credentials_forwarded_to_it(servers, None, [])
        response = info.value.response  # the token request's: no Authorization
        assert response.status_code == 403  # the origin's answer, not the proxy's
        # The echo of Proxy-Authorization: the value, decoded, upper-cased.
        assert response.headers["X-Echo"] == "/  /  / [token] / [token] / [token]"
        assert response.json()["echo"][3:] == ["[token]"] * 3

    def test_a_redirect_to_a_host_holding_the_token_is_refused_before_it_is_resolved(
        self, servers, debug_log
    ):
        refused = r"its host holds a credential of this request \(it is not resolved\)"
        with pytest.raises(xcc.RequestException, match=refused) as info:
            scenario_redirect_to_a_host_holding_the_token(servers, None, [])
        assert type(info.value) is xcc.RequestException
        assert "to 'http://[token].example/next'" in str(info.value)
        assert info.value.response.status_code == 302
        assert not any("redirect to" in line for line in logged(debug_log))

    def test_detail_that_echoes_a_token_is_masked_but_kept(self, servers):
        with pytest.raises(xcc.HTTPError) as info:
            scenario_detail_echoes_the_tokens(servers, None, [])
        assert str(info.value).startswith("rejected ")
        assert info.value.response.status_code == 403

    @pytest.mark.parametrize("where", ["detail", "validation-error"])
    def test_a_token_echoed_across_the_cut_of_a_detail_shows_no_part_of_it(self, servers, where):
        # The message keeps 1000 characters of the server's words: masked before the cut, the
        # token is not left there with its last character dropped.
        def handler(request):
            words = "x" * (1000 - len(ACCESS_TOKEN) + 1) + request.headers["authorization"][7:]
            if where == "detail":
                return json_reply(400, {"detail": words})
            return json_reply(400, {"code": "validation-error", "meta": {"field": [words]}})

        connection = connect(servers.http(handler))
        with pytest.raises(xcc.HTTPError) as info:
            connection.request("GET", "/jobs")
        assert str(info.value).endswith("[token]")
        assert_not_leaked(everything_shown(info.value), ACCESS_TOKEN[:12], ACCESS_TOKEN[-13:-1])

    @pytest.mark.parametrize(
        "tokens",
        [
            {"refresh_token": REFRESH_TOKEN, "access_token": ACCESS_TOKEN},
            {"refresh_token": REFRESH_TOKEN, "access_token": None},
            {"refresh_token": None, "access_token": ACCESS_TOKEN},
        ],
    )
    def test_repr_of_connection_and_response_shows_no_token(self, servers, tokens):
        server = servers.http(lambda request: json_reply(200, {"access_token": ACCESS_TOKEN}))
        connection = connect(server, **tokens)
        shown = repr(connection)
        assert "Connection" in shown and server.url in shown
        response = connection.request("GET", "/jobs", params={"id": "1"})
        shown += repr(connection) + repr(response) + response.url + str(response.headers.keys())
        assert_not_leaked(shown, *secrets_of())
        assert response.url == server.url + "/jobs?id=1"

    @pytest.mark.parametrize("bad", BAD_TOKENS)
    @pytest.mark.parametrize("which", ["refresh_token", "access_token"])
    def test_token_that_cannot_be_sent_in_a_header_is_refused_without_echo(self, which, bad):
        other = {"refresh_token": "access_token", "access_token": "refresh_token"}[which]
        with pytest.raises(ValueError) as info:
            xcc.Connection(**{which: bad, other: REFRESH_TOKEN})
        message = str(info.value)
        assert which.replace("_", " ") in message
        assert other.replace("_", " ") not in message
        assert MARK not in message and MARK not in repr(info.value)

    @pytest.mark.parametrize("chunk_size", [1, None])
    def test_streamed_body_after_a_redirect_to_a_token_location_fails_without_the_token(
        self, servers, chunk_size
    ):
        def serve(sock, index):
            while True:
                request = server.read(sock)
                if request is None:
                    return
                if request.path == "/a":
                    location = "/b?echo=" + request.headers["authorization"][len("Bearer ") :]
                    sock.sendall(raw_response(b"", "302 Found", [("Location", location)]))
                else:
                    sock.sendall(raw_head(headers=[("Content-Length", 100)]) + b"partial")
                    return

        server = servers.raw(serve)
        response = connect(server).request("GET", "/a", stream=True)
        assert response.url == server.url + "/b?echo=[token]"
        assert [r.target for r in server.requests] == ["/a", "/b?echo=" + ACCESS_TOKEN]
        with pytest.raises(xcc.ConnectionError) as info:
            b"".join(response.iter_content(chunk_size))
        assert "/b?echo=[token]" in str(info.value)
        assert_not_leaked(everything_shown(info.value) + reachable_texts(info.value), *secrets_of())

    def test_relative_redirect_from_a_token_location_resolves_against_the_real_url(self, servers):
        def handler(request):
            if request.path == "/a":
                token = request.headers["authorization"][len("Bearer ") :]
                return Reply(302, headers=[("Location", f"/{token}/x")])
            if request.path.endswith("/x"):
                return Reply(302, headers=[("Location", "y")])
            return Reply(200, b"end")

        server = servers.http(handler)
        response = connect(server).request("GET", "/a")
        assert [r.path for r in server.requests] == [
            "/a",
            f"/{ACCESS_TOKEN}/x",
            f"/{ACCESS_TOKEN}/y",
        ]
        assert response.url == server.url + "/[token]/y"

    @pytest.mark.parametrize("tunnel", [False, True])
    def test_proxy_credentials_echoed_in_a_refused_line_show_no_part_of_them(
        self, servers, tunnel
    ):
        # The line is cut for the message after it is masked: a cut Base64 would decode to
        # most of the password.
        password = "a-long-proxy-password-that-a-cut-line-would-show-most-of"
        basic = base64.b64encode(f"{PROXY_USER}:{password}".encode())
        proxy = fault_server(servers, b"HTTP/1.1 200 OK\r\nX-Echo: Basic " + basic + b"\0\r\n\r\n")
        url = f"http://{PROXY_USER}:{password}@127.0.0.1:{proxy.port}"
        connection = xcc.Connection(access_token=ACCESS_TOKEN, host="example.invalid", tls=tunnel)
        shown = r"invalid header line b'X-Echo: \[token\]"
        with pytest.raises(xcc.ConnectionError, match=shown) as info:
            connection.request("GET", "/", proxies={"https" if tunnel else "http": url})
        assert_not_leaked(everything_shown(info.value), basic[:12].decode(), password[:12])

    @pytest.mark.parametrize("tunnel", [False, True])
    def test_proxy_407_echoing_its_proxy_authorization_is_masked(self, servers, tunnel):
        def serve(sock, index):
            request = proxy.read(sock)
            if request is not None:
                echo = request.headers.get("proxy-authorization", "")
                sock.sendall(raw_response(b"", "407 no " + echo, [("X-Echo", echo)]))

        proxy = servers.raw(serve)
        url = f"http://{PROXY_USER}:{PROXY_PASSWORD_IN_URL}@127.0.0.1:{proxy.port}"
        connection = xcc.Connection(REFRESH_TOKEN, ACCESS_TOKEN, "127.0.0.1", closed_port(), tunnel)
        with pytest.raises(xcc.ProxyError) as info:
            connection.request("GET", "/", proxies={"https" if tunnel else "http": url})
        assert "407 no [token]" in str(info.value)
        assert proxy.requests[0].headers["proxy-authorization"] == PROXY_AUTHORIZATION
        shown = everything_shown(info.value) + reachable_texts(info.value)
        assert_not_leaked(shown, PROXY_PASSWORD, PROXY_AUTHORIZATION[6:])

    def test_failed_refresh_is_kept_without_its_traceback(self, servers):
        server = servers.http(lambda request: json_reply(503, {"detail": "down"}))
        connection = connect(server, access_token=None)
        with pytest.raises(xcc.HTTPError):
            connection.request("GET", "/jobs")
        kept = [value for value in vars(connection).values() if isinstance(value, tuple)]
        errors = [item for value in kept for item in value if isinstance(item, Exception)]
        assert errors and all(error.__traceback__ is None for error in errors)


# --------------------------------------------------------------------------- diagnostics

SILENT_BY_DEFAULT = """
import sys, xcc
connection = xcc.Connection(access_token=sys.argv[1], host="127.0.0.1", port=int(sys.argv[2]),
                            tls=False)
connection.request("GET", "/before-logging")
print("logging" in sys.modules, "urllib.request" in sys.modules)
import logging
connection.request("GET", "/after-logging")
print([type(handler).__name__ for handler in logging.getLogger("xcc").handlers])
"""


def logged(caplog):
    """The messages of the ``xcc`` logger's records, as a handler would format them."""
    return [record.getMessage() for record in caplog.records if record.name == "xcc"]


def everything_logged(caplog):
    """All that any handler could show of every record: message, arguments, exception."""
    return "\n".join(
        f"{record.levelname} {record.getMessage()} {record.args!r} {record.exc_text}"
        for record in caplog.records
    )


@pytest.fixture
def debug_log(caplog):
    """Captures every record of the ``xcc`` logger, DEBUG and up."""
    caplog.set_level(logging.DEBUG, logger="xcc")
    return caplog


class TestLogging:
    """The ``xcc`` logger: silent by default, one DEBUG line per step, never a secret."""

    def test_a_token_location_is_masked_when_debug_turns_on_during_the_request(
        self, caplog, servers
    ):
        caplog.set_level(logging.DEBUG, logger="xcc")  # the handler's level, restored after
        logging.getLogger("xcc").setLevel(logging.WARNING)  # off when the request starts

        def handler(request):
            if request.path == "/a":
                logging.getLogger("xcc").setLevel(logging.DEBUG)  # an operator turns it on
                location = "/b?echo=" + request.headers["authorization"][len("Bearer ") :]
                return Reply(302, headers=[("Location", location)])
            return Reply(200)

        server = servers.http(handler)
        connect(server).request("GET", "/a")
        assert f"302 redirect to {server.url}/b?echo=[token]" in logged(caplog)
        assert_not_leaked(everything_logged(caplog), *secrets_of())

    def test_import_and_requests_do_not_import_logging_and_stay_silent(self, server):
        code, out, err = run_python(["-c", SILENT_BY_DEFAULT, ACCESS_TOKEN, str(server.port)])
        assert (code, out, err) == (0, "False False\n['NullHandler']\n", "")
        assert [r.path for r in server.requests] == ["/before-logging", "/after-logging"]

    def test_an_https_request_through_a_proxy_logs_each_step_in_order(
        self, debug_log, tls_server, servers, certificates, monkeypatch
    ):
        proxy = servers.proxy(credentials=(PROXY_USER, PROXY_PASSWORD))
        monkeypatch.setenv("HTTPS_PROXY", proxy.url(PROXY_USER, PROXY_PASSWORD))
        with connect(tls_server) as connection:
            for _ in range(2):
                connection.request("GET", "/devices", verify=certificates["ca"])
        url, address = tls_server.url + "/devices", f"127.0.0.1:{tls_server.port}"
        proxy_line = (
            f"Proxy for {url}: http://127.0.0.1:{proxy.port} (with credentials), from HTTPS_PROXY"
        )
        lines = logged(debug_log)
        assert lines[:3] == [
            proxy_line,
            f"Starting new HTTPS connection: {address}",
            f"Verifying TLS with the CA bundle {certificates['ca']!r}, from verify",
        ]
        assert re.fullmatch(
            r"TLSv1\.[23] with '127\.0\.0\.1': certificate of CN=localhost, issued by"
            r" CN=xcc\.py test ca, valid until 20\d\d-\d\d-\d\d \d\d:\d\d:\d\d UTC",
            lines[3],
        )
        response_line = rf'https://{address} "GET /devices HTTP/1\.1" 200 2 bytes \d+ ms'
        assert re.fullmatch(response_line, lines[4])
        reuse = f"Reusing a kept-alive connection for GET request to '{url}'"
        assert lines[5:7] == [proxy_line, reuse]
        assert re.fullmatch(response_line, lines[7]) and len(lines) == 8

    @pytest.mark.parametrize(
        "verify, environment, expected",
        [
            ("ca", {}, "the CA bundle {ca!r}, from verify"),
            (True, {"REQUESTS_CA_BUNDLE": "ca"}, "the CA bundle {ca!r}, from REQUESTS_CA_BUNDLE"),
            (True, {"CURL_CA_BUNDLE": "ca"}, "the CA bundle {ca!r}, from CURL_CA_BUNDLE"),
            (False, {}, "no CA: verify=False, the certificate is not checked"),
        ],
    )
    def test_the_ca_source_is_named(
        self, debug_log, tls_server, certificates, monkeypatch, verify, environment, expected
    ):
        for name, value in environment.items():
            monkeypatch.setenv(name, certificates[value])
        verify = certificates[verify] if verify == "ca" else verify
        connect(tls_server).request("GET", "/", verify=verify)
        line = "Verifying TLS with " + expected.format(ca=certificates["ca"])
        assert line in logged(debug_log)

    @pytest.mark.parametrize(
        "environment, proxies, expected",
        [
            ({}, None, "direct: no proxy variable or setting"),
            ({"HTTP_PROXY": "{dead}", "NO_PROXY": "localhost, 127.0.0.1"}, None,
             "direct: the NO_PROXY entry '127.0.0.1' matches"),
            ({"HTTP_PROXY": "{dead}"}, {"http": None}, "direct, from proxies['http']"),
            ({"no_proxy": "*", "all_proxy": "{dead}"}, None,
             "direct: the NO_PROXY entry '*' matches"),
        ],
    )  # fmt: skip
    def test_why_a_request_goes_direct_is_named(
        self, debug_log, server, monkeypatch, environment, proxies, expected
    ):
        for name, value in environment.items():
            monkeypatch.setenv(name, value.format(dead=dead_proxy_url()))
        connect(server).request("GET", "/direct", proxies=proxies)
        assert logged(debug_log)[0] == f"Proxy for {server.url}/direct: {expected}"

    def test_refresh_redirect_and_dropped_credentials_are_logged(self, debug_log, servers):
        other = servers.http()
        to_other = lambda request: Reply(302, headers=[("Location", other.url + "/landing")])
        cloud = Cloud(valid=(), routes={"/jobs": to_other})
        origin = servers.http(cloud)
        connect(origin, access_token=None).request("GET", "/jobs")
        connect(origin).request("GET", "/again")  # a stale access token: 401, then a refresh
        lines = [line for line in logged(debug_log) if not line.startswith("Proxy for")]
        token_url = origin.url + TOKEN_PATH
        assert lines[:2] == [
            "The access token is missing: refreshing it first",
            f"Fetching a new access token from {token_url}",
        ]
        assert lines[4].startswith("Got a new access token, valid until 20")
        assert f"302 redirect to {other.url}/landing" in lines
        assert f"Credentials dropped: the redirect leaves {origin.url}" in lines
        assert "401 for GET /again: refreshing the access token and sending it again" in lines
        assert len(cloud.issued) == 2

    @pytest.mark.parametrize("method, again", [("GET", "sent again on a new one"),
                                               ("POST", "not sent twice")])  # fmt: skip
    def test_a_dead_kept_alive_socket_and_the_resend_are_logged(
        self, debug_log, servers, method, again
    ):
        raw = dying_server(servers)
        connection = connect(raw)
        connection.request(method, "/first")
        try:
            connection.request(method, "/second")
        except xcc.ConnectionError:
            assert method == "POST"
        dead = [line for line in logged(debug_log) if "was dead" in line]
        assert len(dead) == 1
        assert dead[0].startswith("The kept-alive connection was dead (")
        assert dead[0].endswith(f"{method} request to '{raw.url}/second' is {again}")

    def test_an_idle_socket_the_server_closed_is_logged_when_dropped(self, debug_log, server):
        connection = connect(server)
        connection.request("GET", "/one")
        server.drop_idle_connections()
        connection.request("GET", "/two")
        lines = logged(debug_log)
        assert "Dropping a kept-alive connection that the server closed while idle" in lines
        assert [r.connection for r in server.requests] == [1, 2]

    @pytest.mark.parametrize(
        "scenario, expected", SCENARIOS, ids=[s.__name__[len("scenario_") :] for s, _ in SCENARIOS]
    )
    def test_no_record_holds_a_token_or_password(
        self, debug_log, servers, tls_context, scenario, expected
    ):
        issued = []
        with pytest.raises(expected):
            scenario(servers, tls_context, issued)
        assert debug_log.records or expected is ValueError  # the scenario was logged
        assert_not_leaked_in_any_case(everything_logged(debug_log), *secrets_of(*issued))

    def test_no_record_of_a_whole_session_holds_a_secret(self, debug_log, servers, certificates):
        issued = []
        other = servers.http()
        to_other = lambda request: Reply(307, headers=[("Location", other.url + "/landing")])
        cloud = Cloud(valid=(), routes={"/jobs": to_other})
        cloud.issued = issued
        origin = servers.http(cloud)
        proxy = servers.proxy(credentials=(PROXY_USER, PROXY_PASSWORD))
        proxies = {"http": proxy.url(PROXY_USER, PROXY_PASSWORD)}
        with connect(origin) as connection:  # a stale access token: 401, refresh, redirect
            connection.request("POST", "/jobs", json={"a": 1}, proxies=proxies)
            connection.request("GET", "/devices", proxies=proxies, stream=True).close()
        with pytest.raises(xcc.ProxyError):
            connect(origin).request("GET", "/", proxies={"http": proxy.url(PROXY_USER, "wr0ng")})
        lines = logged(debug_log)
        assert any("(with credentials), from proxies['http']" in line for line in lines)
        assert any("307 redirect to" in line for line in lines)
        assert any('"GET /devices HTTP/1.1" 200 streamed' in line for line in lines)
        assert len(issued) == 1
        assert_not_leaked(everything_logged(debug_log), "wr0ng", *secrets_of(*issued))

    def test_a_token_that_a_server_echoes_in_a_redirect_is_masked(self, debug_log, servers):
        def echo(request):
            token = request.headers["authorization"][len("Bearer ") :]
            return Reply(302, headers=[("Location", f"{other.url}/landing?echo={token}")])

        other = servers.http()
        origin = servers.http(Cloud(valid=(), routes={"/jobs": echo}))
        issued = origin.handler.issued
        connect(origin).request("GET", "/jobs")  # a 401, a refresh, then the echo
        assert len(issued) == 1 and other.requests[0].query == {"echo": issued}
        lines = logged(debug_log)
        assert f"302 redirect to {other.url}/landing?echo=[token]" in lines
        assert_not_leaked(everything_logged(debug_log), *secrets_of(*issued))

    # -- python xcc.py -v

    @pytest.fixture
    def tls_cloud(self, servers, tls_context):
        """A loopback Xanadu Cloud over HTTPS whose certificate the test CA signed."""
        healthz = lambda request: Reply(200, b"")
        return servers.http(Cloud(routes={"/healthz": healthz}), tls_context)

    def test_verbose_ping_through_a_proxy_with_a_private_ca_shows_each_step(
        self, tls_cloud, servers, certificates
    ):
        proxy = servers.proxy(credentials=(PROXY_USER, PROXY_PASSWORD))
        settings = dict(
            cli_settings(tls_cloud),
            XANADU_CLOUD_TLS="true",
            HTTPS_PROXY=proxy.url(PROXY_USER, PROXY_PASSWORD),
            REQUESTS_CA_BUNDLE=certificates["ca"],
        )
        code, out, err = run_cli(["-v", "ping"], settings)
        assert (code, out) == (0, "Successfully connected to the Xanadu Cloud.\n")
        lines = err.splitlines()
        assert all(line.startswith("xcc: ") for line in lines)
        steps = [
            "xcc: Setting XANADU_CLOUD_REFRESH_TOKEN from the environment variable",
            "xcc: The access token is missing: refreshing it first",
            "xcc: Fetching a new access token from https://127.0.0.1:",
            f"xcc: Proxy for {tls_cloud.url}{TOKEN_PATH}: http://127.0.0.1:{proxy.port} (with"
            " credentials), from HTTPS_PROXY",
            f"xcc: Starting new HTTPS connection: 127.0.0.1:{tls_cloud.port}",
            f"xcc: Verifying TLS with the CA bundle {certificates['ca']!r}, from"
            " REQUESTS_CA_BUNDLE",
            "xcc: TLSv1.",
            f'xcc: {tls_cloud.url} "POST {TOKEN_PATH} HTTP/1.1" 200 ',
            "xcc: Got a new access token, valid until ",
            f"xcc: Proxy for {tls_cloud.url}/healthz: http://127.0.0.1:{proxy.port}",
            "xcc: Reusing a kept-alive connection for GET request",
            f'xcc: {tls_cloud.url} "GET /healthz HTTP/1.1" 200 0 bytes ',
        ]
        found = [next(i for i, line in enumerate(lines) if line.startswith(step)) for step in steps]
        assert found == sorted(found), err
        assert_not_leaked(out + err, *secrets_of(*tls_cloud.handler.issued))

    def test_verbose_request_prints_the_body_on_stdout_and_the_log_on_stderr(self, cloud):
        code, out, err = run_cli(["-v", "request", "GET", "/devices"], cli_settings(cloud))
        assert (code, out) == (0, json.dumps(DEVICES, indent=4) + "\n")
        assert f'xcc: {cloud.url} "GET /devices HTTP/1.1" 200 ' in err
        assert_not_leaked(out + err, *secrets_of(*cloud.handler.issued))

    def test_verbose_shows_the_ca_source_before_the_step_that_failed(self, tls_cloud, certificates):
        settings = dict(cli_settings(tls_cloud), XANADU_CLOUD_TLS="true")
        code, _, err = run_cli(["-v", "ping"], settings)
        lines = err.splitlines()
        assert code == 1
        assert lines[-2].startswith("xcc: Verifying TLS with the system's CAs: ")
        assert lines[-1].startswith("xcc.py: error: POST request to ")
        assert "did not verify" in lines[-1] and "SSL_CERT_FILE" in lines[-1]
        assert "verify=" not in lines[-1]
        settings["SSL_CERT_FILE"] = certificates["ca"]
        code, out, err = run_cli(["-v", "ping"], settings)
        assert (code, out) == (0, "Successfully connected to the Xanadu Cloud.\n")
        ca_file = f"file {certificates['ca']!r} (from SSL_CERT_FILE)"
        assert f"xcc: Verifying TLS with the system's CAs: {ca_file}" in err


# ------------------------------------------------------------------- Connection: threads

THREADS = 16


class TestThreads:
    def test_concurrent_401s_cause_one_refresh_and_every_request_is_retried(self, servers):
        cloud = Cloud(valid=())  # the connection's access token is stale
        wave = threading.Barrier(THREADS, timeout=10)
        lock = threading.Lock()
        answered = []  # (X-Thread, Authorization, body, status)
        broken = []

        def handler(request):
            reply = cloud(request)
            if request.path != TOKEN_PATH:
                with lock:
                    first_wave = sum(1 for entry in answered if entry[3] == 401) < THREADS
                    answered.append(
                        (
                            request.headers.get("x-thread"),
                            request.headers.get("authorization"),
                            request.body,
                            reply.status,
                        )
                    )
                if reply.status == 401 and first_wave:
                    try:
                        wave.wait()  # no 401 is answered before all 16 requests arrived
                    except threading.BrokenBarrierError:
                        broken.append(request.headers.get("x-thread"))
            return reply

        server = servers.http(handler)
        connection = connect(server)
        start = threading.Barrier(THREADS, timeout=10)
        results, errors = {}, []

        def work(index):
            try:
                start.wait()
                response = connection.request(
                    "POST", "/jobs", headers={"X-Thread": str(index)}, json={"thread": index}
                )
                results[index] = response.json()
            except Exception as exc:  # noqa: BLE001 (reported below)
                errors.append((index, exc))

        threads = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)

        assert errors == [] and broken == []
        assert results == {i: {"path": "/jobs"} for i in range(THREADS)}
        assert [r.path for r in server.requests].count(TOKEN_PATH) == 1
        assert len(cloud.issued) == 1
        new = "Bearer " + cloud.issued[0]
        for index in range(THREADS):
            mine = [entry for entry in answered if entry[0] == str(index)]
            body = json.dumps({"thread": index}).encode()
            assert mine == [
                (str(index), "Bearer " + ACCESS_TOKEN, body, 401),
                (str(index), new, body, 200),
            ]
        assert connection.access_token == cloud.issued[0]

    @pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is not available")
    def test_a_child_forked_while_a_thread_refreshes_can_refresh_too(self, server):
        lock, release, issued = threading.Lock(), threading.Event(), []

        def handler(request):
            if request.path != TOKEN_PATH:
                return json_reply(200, {"path": request.path})
            with lock:
                issued.append(make_jwt(int(time.time()) + 3600, f"access-{len(issued)}"))
                token, first = issued[-1], len(issued) == 1
            if first:
                release.wait(5)  # the parent's thread holds the refresh lock meanwhile
            return json_reply(200, {"access_token": token})

        server.handler = handler
        connection = connect(server, access_token=make_jwt(int(time.time()) - 60))
        refresher = threading.Thread(target=connection.request, args=("GET", "/parent"))
        refresher.start()
        try:
            assert wait_until(lambda: len(server.requests) == 1)  # the token request arrived
            code = exit_code_of_child(lambda: connection.request("GET", "/child", timeout=5).ok)
        finally:
            release.set()
            refresher.join(10)
        assert code == 0
        assert [r.path for r in server.requests].count(TOKEN_PATH) == 2
        sent = {(r.path, r.headers["authorization"]) for r in server.requests[2:]}
        assert sent == {("/child", "Bearer " + issued[1]), ("/parent", "Bearer " + issued[0])}

    def test_a_failing_refresh_is_shared_by_the_threads_that_waited_for_it(self, servers):
        # The issue's case: a token endpoint that hangs, many threads with a short timeout.
        # Each waiting thread gets the first one's error instead of a token request (and a
        # timeout) of its own, in turn: 8 threads waited up to 8 timeouts.
        release = threading.Event()

        def serve(sock, index):
            while raw.read(sock):
                release.wait(10)  # the token request is never answered in time

        raw = servers.raw(serve)
        connection = connect(raw, access_token=None)
        errors = []

        def work():
            try:
                connection.request("GET", "/jobs", timeout=2)
            except Exception as exc:  # noqa: BLE001 (checked below)
                errors.append(exc)

        first = threading.Thread(target=work)
        first.start()
        try:
            assert wait_until(lambda: len(raw.requests) == 1)  # the first refresh is under way
            others = [threading.Thread(target=work) for _ in range(7)]
            for thread in others:
                thread.start()
            for thread in [first] + others:
                thread.join(30)
        finally:
            release.set()
        assert [r.path for r in raw.requests] == [TOKEN_PATH]
        assert len(errors) == 8
        message = f"POST request to '{connection.url(TOKEN_PATH)}' timed out"
        assert all(isinstance(e, xcc.Timeout) and str(e) == message for e in errors), errors

    def test_a_failed_refresh_is_not_shared_with_a_thread_of_other_settings(self, servers):
        # A refresh that timed out with timeout=1 says nothing of one with timeout=5 (nor
        # one that failed verify=True of one with verify=False): that thread asks itself.
        release, issued = threading.Event(), []

        def handler(request):
            if request.path == TOKEN_PATH:
                if not issued:
                    issued.append(None)
                    release.wait(10)  # the first token request is never answered in time
                issued.append(make_jwt(int(time.time()) + 3600, "access-new"))
                return json_reply(200, {"access_token": issued[-1]})
            return json_reply(200, {"path": request.path})

        server = servers.http(handler)
        connection = connect(server, access_token=None)
        errors = []

        def first():
            try:
                connection.request("GET", "/first", timeout=1)
            except xcc.Timeout as exc:
                errors.append(exc)

        thread = threading.Thread(target=first)
        thread.start()
        try:
            assert wait_until(lambda: len(server.requests) == 1)  # its refresh is under way
            response = connection.request("GET", "/second", timeout=5)
        finally:
            release.set()
            thread.join(30)
        assert len(errors) == 1
        assert response.json() == {"path": "/second"}
        assert [r.path for r in server.requests] == [TOKEN_PATH, TOKEN_PATH, "/second"]

    def test_a_thread_waits_for_another_ones_refresh_no_longer_than_its_own_timeout(self, servers):
        release, issued = threading.Event(), []

        def handler(request):
            if request.path == TOKEN_PATH:
                release.wait(10)
                issued.append(make_jwt(int(time.time()) + 3600, "access-new"))
                return json_reply(200, {"access_token": issued[-1]})
            return json_reply(200, {"path": request.path})

        server = servers.http(handler)
        connection = connect(server, access_token=None)
        results = {}

        def slow():
            results["slow"] = connection.request("GET", "/slow", timeout=30).json()

        thread = threading.Thread(target=slow)
        thread.start()
        try:
            assert wait_until(lambda: len(server.requests) == 1)  # its refresh is under way
            with pytest.raises(xcc.Timeout) as info:
                connection.request("GET", "/quick", timeout=0.2)
        finally:
            release.set()
            thread.join(30)
        assert str(info.value) == (
            f"POST request to '{connection.url(TOKEN_PATH)}' timed out (waiting for another"
            " thread's token refresh)"
        )
        assert results == {"slow": {"path": "/slow"}}
        assert [r.path for r in server.requests] == [TOKEN_PATH, "/slow"]


# --------------------------------------------------------- Connection: randomised inputs

CASES = 300
PRINTABLE = "".join(chr(code) for code in range(0x20, 0x7F))
LATIN1 = "éÿ\xa0\xa9\x80\x85\xffÄß"
CONTROLS = "\r\n\x00\x01\x1b\x7f\x0b\x0c\x1f"
NON_LATIN1 = "€日\u2028\U0001f600\u0100"
SURROGATE = "\ud800"
TOKEN_CHARS = "ABCXYZabcxyz0189!#$%&'*+-.^_`|~"
RESERVED = "&=+%#?/;:@,$!'()*[] "
UNICODE = "éß日本語€\U0001f600\u2028\xa0"
PATH_RAW = "ABCxyz019-._~!$&'()*+,;=:@ \"<>[]{}|\\^`" + UNICODE
URL_CHARS = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~:/?#[]@!$&'()*+,;=%"
)
HEX = frozenset("0123456789abcdefABCDEF")


def pick(rng, weighted):
    """Returns a random character from ``[(alphabet, weight), ...]``."""
    alphabets = [alphabet for alphabet, _ in weighted]
    return rng.choice(rng.choices(alphabets, [weight for _, weight in weighted])[0])


def random_text(rng, weighted, longest=12):
    return "".join(pick(rng, weighted) for _ in range(rng.randint(0, longest)))


def random_json(rng, depth=0):
    kinds = ["str", "int", "float", "bool", "null"] + (["dict", "list"] if depth < 3 else [])
    kind = rng.choice(kinds)
    if kind in ("dict", "list"):
        size = rng.randint(0, 4)
        if kind == "dict":
            text = [(PRINTABLE, 5), (UNICODE, 2), (CONTROLS, 1), ('"\\', 1)]
            return {random_text(rng, text, 6): random_json(rng, depth + 1) for _ in range(size)}
        return [random_json(rng, depth + 1) for _ in range(size)]
    if kind == "str":
        return random_text(rng, [(PRINTABLE, 5), (UNICODE, 2), (CONTROLS, 1), ('"\\/', 1),
                                 (SURROGATE, 0.2)])  # fmt: skip
    if kind == "int":
        return rng.randint(-(2**70), 2**70)
    if kind == "float":
        special = [0.0, -0.0, 1e308, -1e-308, 5e-324, 0.1]
        return (
            rng.choice(special)
            if rng.random() < 0.2
            else rng.uniform(-1, 1) * 10 ** rng.randint(-30, 30)
        )
    if kind == "bool":
        return rng.random() < 0.5
    return None


def has_non_finite(obj):
    if isinstance(obj, float):
        return not math.isfinite(obj)
    if isinstance(obj, dict):
        return any(has_non_finite(value) for value in obj.values())
    if isinstance(obj, list):
        return any(has_non_finite(value) for value in obj)
    return False


def plant_non_finite(rng, obj):
    """Returns ``obj`` with NaN or an infinity put somewhere in it."""
    bad = rng.choice([float("nan"), float("inf"), -float("inf")])
    if isinstance(obj, dict):
        obj = dict(obj)
        obj["bad"] = bad
        return obj
    if isinstance(obj, list):
        return obj + [bad]
    return [obj, bad]


def unencodable(text):
    return any(0xD800 <= ord(char) <= 0xDFFF for char in text)


def assert_sent_or_refused(server, connection, *args, **kwargs):
    """Sends ``connection.request(*args, **kwargs)``; returns the request that reached
    ``server``, or None if it was refused (ValueError/TypeError) without a byte being sent."""
    before = len(server.requests)
    try:
        connection.request(*args, **kwargs)
    except (ValueError, TypeError):
        assert len(server.requests) == before
        return None
    assert len(server.requests) == before + 1
    return server.requests[-1]


class TestRandomised:
    def test_random_header_values_arrive_exactly_or_are_refused(self, server):
        rng = random.Random(20240401)
        connection = connect(server)
        alphabet = [(PRINTABLE, 40), (LATIN1, 6), (" \t", 8), (CONTROLS, 2), (NON_LATIN1, 1.5),
                    (SURROGATE, 0.2)]  # fmt: skip
        refused = sent = 0
        for _ in range(CASES):
            name = "X-R-" + random_text(rng, [(TOKEN_CHARS, 50), (" :é\r\n()@", 1)], 8)
            value = random_text(rng, alphabet, 16)
            bad_name = not set(name[4:]) <= set(TOKEN_CHARS)
            bad_value = any(
                (ord(char) < 32 and char != "\t") or ord(char) == 127 or ord(char) > 255
                for char in value
            )
            request = assert_sent_or_refused(server, connection, "GET", "/h", headers={name: value})
            assert (request is None) == (bad_name or bad_value), (name, value)
            if request is None:
                refused += 1
                continue
            sent += 1
            assert request.well_formed
            fields = [(n, v) for n, v in request.raw_headers if n.lower() == name.lower()]
            assert fields == [(name, value.strip(" \t"))]
        assert refused > 20 and sent > 100  # both outcomes were exercised
        assert server.connections == 1

    def test_random_params_arrive_exactly_or_are_refused(self, server):
        rng = random.Random(1357)
        connection = connect(server)
        alphabet = [(PRINTABLE, 10), (RESERVED, 6), (UNICODE, 3), (CONTROLS, 1), (SURROGATE, 0.1)]
        refused = sent = 0
        for _ in range(CASES):
            pairs, intended, bad = [], [], False
            for _ in range(rng.randint(0, 5)):
                key = random_text(rng, alphabet, 6)
                shape = rng.choice(["str", "str", "none", "int", "bytes", "list"])
                if shape == "str":
                    value = random_text(rng, alphabet, 8)
                elif shape == "none":
                    value = None
                elif shape == "int":
                    value = rng.randint(-1000, 10**12)
                elif shape == "bytes":
                    value = random_text(rng, [(PRINTABLE, 3), (UNICODE, 1)], 6).encode("utf-8")
                else:
                    value = [rng.choice([None, random_text(rng, alphabet, 5)]) for _ in range(3)]
                pairs.append((key, value))
                for item in value if isinstance(value, list) else [value]:
                    if item is None:
                        continue
                    text = item.decode("utf-8") if isinstance(item, bytes) else str(item)
                    bad = bad or unencodable(key) or unencodable(text)
                    intended.append((key, text))
            keys = [key for key, _ in pairs]
            params = dict(pairs) if len(set(keys)) == len(keys) and rng.random() < 0.5 else pairs
            prefix = rng.choice([("/q", []), ("/q?fixed=1", [("fixed", "1")])])
            request = assert_sent_or_refused(server, connection, "GET", prefix[0], params=params)
            assert (request is None) == bad, params
            if request is None:
                refused += 1
                continue
            sent += 1
            assert set(request.target) <= URL_CHARS, request.target
            assert request.path == "/q"
            query = urlsplit(request.target).query
            received = parse_qsl(query, keep_blank_values=True, errors="strict")
            assert received == prefix[1] + intended, params
        assert refused > 3 and sent > 100
        assert server.connections == 1

    def test_random_json_bodies_arrive_exactly_or_are_refused(self, server):
        rng = random.Random(424242)
        connection = connect(server)
        refused = sent = 0
        for _ in range(CASES):
            payload = random_json(rng)
            if payload is None:  # json=None means "no JSON body", as in requests
                payload = [None]
            if rng.random() < 0.1:
                payload = plant_non_finite(rng, payload)
            request = assert_sent_or_refused(server, connection, "POST", "/j", json=payload)
            assert (request is None) == has_non_finite(payload)
            if request is None:
                refused += 1
                continue
            sent += 1
            assert request.header_values("Content-Type") == ["application/json"]
            assert request.header_values("Content-Length") == [str(len(request.body))]
            assert json.loads(request.body.decode("utf-8")) == payload
        assert refused > 10 and sent > 200
        assert server.connections == 1

    def test_random_paths_arrive_exactly_or_are_refused(self, server):
        rng = random.Random(8675309)
        connection = connect(server)
        escapable = PATH_RAW + "/?#%" + CONTROLS
        refused = sent = 0
        for _ in range(CASES):
            raw_segments, meant_segments, bad = [], [], False
            for index in range(rng.randint(1, 4)):
                raw, meant = "", ""
                for _ in range(rng.randint(1 if index == 0 else 0, 6)):
                    kind = rng.choices(["raw", "escaped", "stray", "control"], [12, 3, 1, 0.4])[0]
                    if kind == "raw":
                        char = SURROGATE if rng.random() < 0.003 else rng.choice(PATH_RAW)
                        raw, meant = raw + char, meant + char
                        bad = bad or unencodable(char)
                    elif kind == "escaped":  # already percent-encoded: kept as it is
                        char = rng.choice(escapable)
                        hex_form = "%02X" if rng.random() < 0.7 else "%02x"
                        raw += "".join("%" + hex_form % byte for byte in char.encode("utf-8"))
                        meant += char
                    elif kind == "stray":  # a "%" that starts no escape
                        piece = "%" + rng.choice("gGzZ-x_~")
                        raw, meant = raw + piece, meant + piece
                    else:
                        char = rng.choice(CONTROLS)
                        raw, meant, bad = raw + char, meant + char, True
                raw_segments.append(raw)
                meant_segments.append(meant)
            path = "/" + "/".join(raw_segments)
            if rng.random() < 0.1:
                path += "#" + random_text(rng, [(PRINTABLE.replace("#", ""), 1)], 6)
            request = assert_sent_or_refused(server, connection, "GET", path)
            assert (request is None) == bad, path
            if request is None:
                refused += 1
                continue
            sent += 1
            target = request.target
            assert set(target) <= URL_CHARS, target
            assert "#" not in target and "?" not in target
            for escape in target.split("%")[1:]:  # every "%" starts an escape
                assert len(escape) >= 2 and set(escape[:2]) <= HEX, target
            meant = "/" + "/".join(meant_segments)
            assert unquote(target, encoding="utf-8", errors="strict") == meant, path
        assert refused > 10 and sent > 150
        assert server.connections == 1


# ------------------------------------------------------ Connection: the original callers


X8_CIRCUIT = "name t\nversion 1.0\ntarget X8_01 (shots=3)\n\nMeasureFock() | [0, 1, 2, 3, 4, 5, 6, 7]\n"


class TestOriginalCallers:
    """The calls the original client makes, end to end against the Xanadu Cloud stand-in."""

    @pytest.fixture
    def stand_in(self):
        with standin.StandIn() as cloud:
            yield cloud
            connect(cloud).close()

    def test_the_seed_example_pings_and_gets_a_device_on_one_socket(self, stand_in):
        connection = xcc.Connection(
            refresh_token=standin.REFRESH_TOKEN, host=stand_in.host, port=stand_in.port, tls=False
        )
        assert repr(connection.ping()) == "<Response [200]>"
        response = connection.request(method="GET", path="/devices/X8_01")
        assert repr(response) == "<Response [200]>"
        assert response.json() == standin.X8_01
        assert stand_in.connections == 1

    def test_jobs_create_list_cancel_and_stream_the_result(self, stand_in):
        stand_in.result_size = 3 * 32768 + 5
        connection = connect(stand_in, refresh_token=standin.REFRESH_TOKEN, access_token=None)
        job = connection.request(
            "POST", "/jobs", json={"name": "j", "target": "X8_01", "circuit": X8_CIRCUIT}
        ).json()
        jobs = connection.request(
            "GET", "/jobs", params={"size": 10, "id": [job["id"], "other"], "status": None}
        ).json()
        assert [item["id"] for item in jobs["data"]] == [job["id"]]
        assert stand_in.requests[-1].query == {"size": ["10"], "id": [job["id"], "other"]}
        other = connection.request("POST", "/jobs", json={"circuit": X8_CIRCUIT}).json()
        cancelled = connection.request("PATCH", f"/jobs/{other['id']}", json={"status": "cancelled"})
        assert cancelled.json()["status"] == "cancelled"
        wait_until(lambda: connection.request("GET", f"/jobs/{job['id']}").json()["status"] == "complete")
        response = connection.request("GET", f"/jobs/{job['id']}/result", stream=True)
        chunks = list(response.iter_content(chunk_size=32768))
        assert [len(chunk) for chunk in chunks] == [32768, 32768, 32768, 5]
        assert b"".join(chunks) == standin.result_bytes(stand_in.result_size)

    def test_the_stand_in_serves_what_the_original_package_and_strawberry_fields_read(
        self, stand_in
    ):
        connection = connect(stand_in, refresh_token=standin.REFRESH_TOKEN, access_token=None)
        spec = connection.request("GET", "/devices/X8_01/specifications").json()
        assert (spec["target"], spec["modes"], spec["compiler"][0]) == ("X8_01", 8, "Xcov")
        assert re.findall(r"\btarget (\w+)", spec["layout"]) == ["X8_01"]
        assert spec["gate_parameters"]["squeezing_amplitude_0"] == [0, 1]
        assert connection.request("GET", "/devices/X8_01/certificate").json()["target"] == "X8_01"
        good = connection.request("POST", "/jobs", json={"circuit": X8_CIRCUIT}).json()
        bad = connection.request("POST", "/jobs", json={"circuit": "no target here"}).json()
        assert set(good) == {"id", "name", "status", "target", "language", "created_at",
                             "started_at", "finished_at", "running_time", "meta"}  # fmt: skip
        assert good["status"] == "open" and good["running_time"] is None
        with pytest.raises(xcc.HTTPError, match="^Job result not found"):
            connection.request("GET", f"/jobs/{good['id']}/result")
        with pytest.raises(xcc.HTTPError, match="^Job not found"):
            connection.request("GET", "/jobs/unknown/result")
        seen = set()
        for _ in range(100):
            seen.add(connection.request("GET", f"/jobs/{good['id']}").json()["status"])
            if "complete" in seen:
                break
            time.sleep(0.02)
        assert seen >= {"queued", "complete"}
        record = connection.request("GET", f"/jobs/{good['id']}").json()
        assert record["running_time"] > 0 and record["started_at"] < record["finished_at"]
        failed = connection.request("GET", f"/jobs/{bad['id']}").json()
        assert (failed["status"], failed["meta"]["error_code"]) == ("failed", "invalid-circuit")
        circuit = connection.request("GET", f"/jobs/{good['id']}/circuit").json()
        assert circuit == {"circuit": X8_CIRCUIT}
        npz = zipfile.ZipFile(io.BytesIO(connection.request("GET", f"/jobs/{good['id']}/result").content))
        npy = npz.read("arr_0.npy")
        header_length = struct.unpack("<H", npy[8:10])[0]
        header = npy[10 : 10 + header_length].decode("latin-1")
        assert npy[:8] == b"\x93NUMPY\x01\x00" and (10 + header_length) % 64 == 0
        assert "'descr': '<i8'" in header and "'shape': (3, 8)" in header
        counts = struct.unpack("<24q", npy[10 + header_length :])
        assert all(0 <= count <= 10 for count in counts)
        listed = connection.request("GET", "/jobs", params={"status": "failed", "size": 5}).json()
        assert [job["id"] for job in listed["data"]] == [bad["id"]] and listed["meta"]["count"] == 1

    def test_a_validation_error_from_the_cloud_is_raised_with_its_message(self, stand_in):
        connection = connect(stand_in, refresh_token=standin.REFRESH_TOKEN, access_token=None)
        with pytest.raises(xcc.HTTPError) as info:
            connection.request("POST", "/jobs", json={"name": "no circuit"})
        assert str(info.value) == "Missing data for required field."

    def test_the_demo_runs_the_seed_example_offline(self):
        code, out, err = run_python(["offline/demo.py"], timeout=60)
        assert code == 0, err
        assert json.dumps(standin.X8_01, indent=4) in out
        assert "POST  " + TOKEN_PATH in out

    def test_the_typed_example_runs_against_the_stand_in(self, stand_in):
        # .ci/run type-checks it with mypy --strict; here it runs, annotations and all.
        stand_in.result_size = 2 * 32768 + 7
        code, out, err = run_python(
            ["offline/typed_example.py", stand_in.host, str(stand_in.port), standin.REFRESH_TOKEN]
        )
        assert code == 0, err
        assert "device: X8_01 online" in out
        assert "result: 65543 bytes" in out
        assert "error: HTTPError 404: Device not found." in out
        assert standin.REFRESH_TOKEN not in out + err

    def test_the_seed_example_constructs_and_the_server_refuses_its_placeholder_key(
        self, stand_in
    ):
        connection = xcc.Connection(
            refresh_token="Xanadu Cloud API key goes here", host=stand_in.host,
            port=str(stand_in.port), tls=0,
        )  # fmt: skip
        assert (connection.port, connection.tls, connection.scheme) == (stand_in.port, False, "http")
        with pytest.raises(xcc.HTTPError, match=r"^Refresh token \(e\.g\., Xanadu Cloud API key\)"):
            connection.ping()
        (request,) = stand_in.requests
        assert parse_qsl(request.body.decode())[1] == ("refresh_token", "Xanadu Cloud API key goes here")

    def test_an_opaque_access_token_is_sent_as_given(self, server):
        connection = connect(server, refresh_token=None, access_token="opaque token+/=é")
        assert connection.request("GET", "/jobs").ok
        assert server.requests[0].header_values("Authorization") == ["Bearer opaque token+/=é"]

    @pytest.mark.parametrize("positional", [True, False])
    def test_load_takes_the_original_clients_settings_object(self, server, positional):
        class Settings:  # the original's xcc.Settings: pydantic fields in upper case
            REFRESH_TOKEN = REFRESH_TOKEN
            ACCESS_TOKEN = None
            HOST = "127.0.0.1"
            PORT = server.port
            TLS = False

        settings = Settings()
        connection = (
            xcc.Connection.load(settings) if positional else xcc.Connection.load(settings=settings)
        )
        assert (connection.refresh_token, connection.access_token) == (REFRESH_TOKEN, None)
        assert connection.url() == server.url + "/"
        overridden = xcc.Connection.load(settings, access_token=ACCESS_TOKEN, port=1)
        assert (overridden.access_token, overridden.port) == (ACCESS_TOKEN, 1)

    @pytest.mark.skipif(
        importlib.util.find_spec("requests") is None, reason="requests is not installed"
    )
    def test_requests_exceptions_catch_its_errors_once_requests_is_imported(self, server):
        def handler(request):
            if request.path == "/slow":
                time.sleep(1)
            return Reply(404 if request.path == "/missing" else 200, b"{}")

        server.handler = handler
        # In a child: this process must not import requests for the other tests.
        code, out, err = run_python(["-c", REQUESTS_CALLER, HERE, str(server.port)])
        assert code == 0, err
        assert out.split() == ["HTTPError", "ConnectionError", "ReadTimeout", "ok"]

    def test_without_requests_the_errors_are_the_modules_own_classes(self):
        code, out, err = run_python(["-c", "import sys, xcc; xcc.HTTPError('x');"
                                     "print(type(xcc.HTTPError('x')).__mro__[1].__module__,"
                                     " 'requests' in sys.modules)"])  # fmt: skip
        assert (code, out.split()) == (0, ["xcc", "False"]), err


REQUESTS_CALLER = r"""
import pickle, sys
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/offline"]
import requests, xcc
from loopback import closed_port
port = int(sys.argv[2])
connection = xcc.Connection(access_token="a.b.c", host="127.0.0.1", port=port, tls=False)
try:
    connection.request("GET", "/missing")
except requests.exceptions.HTTPError as exc:
    assert isinstance(exc, xcc.HTTPError) and isinstance(exc.response, xcc.Response)
    assert exc.response.status_code == 404 and exc.request is None
    print("HTTPError")
closed = xcc.Connection(access_token="a.b.c", host="127.0.0.1", port=closed_port(), tls=False)
try:
    closed.request("GET", "/")
except requests.exceptions.ConnectionError as exc:
    assert isinstance(exc, xcc.ConnectionError) and isinstance(exc, requests.RequestException)
    copy = pickle.loads(pickle.dumps(exc))
    assert isinstance(copy, requests.exceptions.ConnectionError) and copy.args == exc.args
    print("ConnectionError")
try:
    connection.request("GET", "/slow", timeout=(5, 0.2))
except requests.exceptions.ReadTimeout as exc:
    assert isinstance(exc, (xcc.ReadTimeout, requests.exceptions.Timeout))
    print("ReadTimeout")
print("ok")
"""


# -------------------------------------------------------------------------- command line


def run_cli(args, settings=None, module=False, timeout=30):
    """Runs ``python xcc.py ARGS`` (or ``python -m xcc ARGS``) in the repository with the
    test's environment plus ``settings``; returns ``(exit code, stdout, stderr)`` as text."""
    command = (["-m", "xcc"] if module else ["xcc.py"]) + list(args)
    return run_python(command, dict(os.environ, **(settings or {})), timeout)


def cli_settings(server):
    """The ``XANADU_CLOUD_*`` variables for a loopback HTTP server (refresh token only)."""
    return {
        "XANADU_CLOUD_REFRESH_TOKEN": REFRESH_TOKEN,
        "XANADU_CLOUD_HOST": "127.0.0.1",
        "XANADU_CLOUD_PORT": str(server.port),
        "XANADU_CLOUD_TLS": "false",
    }


def assert_one_error_line(stderr):
    """Asserts that ``stderr`` is one line, without a traceback."""
    assert stderr.endswith("\n")
    assert len(stderr.splitlines()) == 1, stderr
    assert "Traceback" not in stderr


DEVICES = {"data": [{"target": "X8_01", "status": "online", "name": "É"}], "meta": {"n": 1}}
PLAIN = b"not JSON: \xc3\xa9 \x00 bytes\nsecond line"


@pytest.fixture
def cloud(servers):
    """A loopback Xanadu Cloud for the command line: token endpoint, 401 for stale tokens."""

    def echo(request):
        return json_reply(
            200,
            {
                "method": request.method,
                "path": request.path,
                "query": request.query,
                "body": request.body.decode("utf-8"),
            },
        )

    handler = Cloud(
        routes={
            "/healthz": lambda request: Reply(200, b""),
            "/devices": lambda request: json_reply(200, DEVICES),
            "/echo": echo,
            "/plain": lambda request: Reply(200, PLAIN, [("Content-Type", "text/plain")]),
            "/devices/X9": lambda request: json_reply(404, {"detail": "Device X9 not found."}),
        }
    )
    return servers.http(handler)


def cut_output(cloud, path, read):
    """Runs ``python xcc.py request GET path``, reads its output with ``read(stdout)`` and
    closes the pipe, as ``| head`` does; returns ``(what read got, exit code, stderr)``."""
    process = subprocess.Popen(
        [sys.executable, "xcc.py", "request", "GET", path],
        cwd=HERE,
        env=dict(os.environ, **cli_settings(cloud)),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        first = read(process.stdout)
        process.stdout.close()  # the writer gets EPIPE
        err = process.stderr.read()
        return first, process.wait(30), err
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stderr.close()


class TestCommandLine:
    """``python xcc.py ...`` and ``python -m xcc ...`` run as subprocesses against a
    loopback server: output, exit codes, one line on errors, no traceback, no token."""

    def test_ping_prints_the_seeds_message(self, cloud):
        code, out, err = run_cli(["ping"], cli_settings(cloud))
        assert (code, out, err) == (0, "Successfully connected to the Xanadu Cloud.\n", "")
        assert [(r.method, r.path) for r in cloud.requests] == [
            ("POST", TOKEN_PATH),
            ("GET", "/healthz"),
        ]

    def test_module_reads_settings_from_the_dotenv_file(self, cloud, clean_environment):
        write_home_dotenv(
            clean_environment,
            "".join(f"{name}='{value}'\n" for name, value in cli_settings(cloud).items()),
        )
        code, out, err = run_cli(["ping"], module=True)
        assert (code, out, err) == (0, "Successfully connected to the Xanadu Cloud.\n", "")
        assert [r.path for r in cloud.requests] == [TOKEN_PATH, "/healthz"]

    def test_request_prints_json_indented_by_four(self, cloud):
        code, out, err = run_cli(["request", "GET", "/devices"], cli_settings(cloud))
        assert (code, err) == (0, "")
        assert out == json.dumps(DEVICES, indent=4) + "\n"
        assert cloud.requests[-1].method == "GET" and cloud.requests[-1].path == "/devices"

    def test_params_and_headers_reach_the_server(self, cloud):
        code, out, err = run_cli(
            ["request", "GET", "/echo", "--param", "id=a", "--param", "id=b", "--param",
             "q=a&b c=d", "--header", "X-Trace: abc:def", "--header", "Accept-Version: 0.5.0"],
            cli_settings(cloud),
        )  # fmt: skip
        assert (code, err) == (0, "")
        request = cloud.requests[-1]
        assert request.query == {"id": ["a", "b"], "q": ["a&b c=d"]}
        assert request.headers["x-trace"] == "abc:def"
        assert request.headers["accept-version"] == "0.5.0"
        assert json.loads(out)["query"] == {"id": ["a", "b"], "q": ["a&b c=d"]}

    def test_json_body_reaches_the_server(self, cloud):
        body = {"name": "job", "target": "X8_01", "circuit": "é", "shots": [1, 2.5, None]}
        code, out, err = run_cli(
            ["request", "POST", "/echo", "--json", json.dumps(body)], cli_settings(cloud)
        )
        assert (code, err) == (0, "")
        request = cloud.requests[-1]
        assert request.method == "POST"
        assert request.headers["content-type"] == "application/json"
        assert json.loads(request.body.decode("utf-8")) == body
        assert json.loads(out)["method"] == "POST"

    def test_non_json_body_is_printed_raw(self, cloud):
        code, out, err = run_cli(["request", "GET", "/plain"], cli_settings(cloud))
        assert (code, out.encode("utf-8"), err) == (0, PLAIN, "")

    def test_http_error_prints_the_detail_on_one_line_and_exits_1(self, cloud):
        code, out, err = run_cli(["request", "GET", "/devices/X9"], cli_settings(cloud))
        assert code == 1
        assert out == ""
        assert_one_error_line(err)
        assert "Device X9 not found." in err
        for token in [REFRESH_TOKEN] + cloud.handler.issued:
            assert_not_leaked(out + err, token)

    @pytest.mark.parametrize("module", [False, True])
    def test_an_http_error_line_names_the_status_method_and_path(self, cloud, module):
        code, out, err = run_cli(["request", "GET", "/devices/X9"], cli_settings(cloud), module)
        prog = "python -m xcc" if module else "xcc.py"
        assert (code, out) == (1, "")
        assert err == f"{prog}: error: 404 GET /devices/X9: Device X9 not found.\n"

    def test_a_validation_error_line_names_the_fields(self, servers):
        meta = {"circuit": ["Missing data for required field."], "target": {"0": ["Unknown."]}}
        body = {"code": "validation-error", "meta": meta}
        server = servers.http(lambda request: json_reply(400, body))
        settings = dict(cli_settings(server), XANADU_CLOUD_ACCESS_TOKEN=ACCESS_TOKEN)
        code, out, err = run_cli(["request", "POST", "/jobs", "--json", "{}"], settings)
        assert (code, out) == (1, "")
        assert err == (
            "xcc.py: error: 400 POST /jobs: circuit: Missing data for required field.;"
            " target.0: Unknown.\n"
        )

    @pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy"])
    def test_a_refusing_proxy_is_named_with_the_variable_that_set_it(self, cloud, variable):
        port = closed_port()
        settings = dict(cli_settings(cloud), **{variable: f"http://127.0.0.1:{port}"})
        code, out, err = run_cli(["ping"], settings)
        assert (code, out) == (1, "")
        assert_one_error_line(err)
        assert f"Cannot connect to proxy http://127.0.0.1:{port}: " in err
        assert err.endswith(f" (the proxy from {variable})\n")
        assert "shut down" not in err

    def test_the_default_host_out_of_reach_points_to_the_stand_in(self, servers):
        # Through a proxy that refuses every tunnel, as one does for a host it cannot
        # resolve, so that the test reaches no network.
        proxy = servers.proxy(refuse=502)
        settings = {"XANADU_CLOUD_ACCESS_TOKEN": ACCESS_TOKEN, "HTTPS_PROXY": proxy.url()}
        code, out, err = run_cli(["ping"], settings)
        assert (code, out) == (1, "")
        assert_one_error_line(err)
        assert [r.target for r in proxy.requests] == [f"{xcc._DEFAULT_HOST}:443"]
        assert "The Xanadu Cloud shut down in January 2026" in err
        assert "`python offline/standin.py`" in err

    def test_a_servers_terminal_escapes_are_printed_escaped(self, servers):
        detail = "no \x1b]0;owned\x07\x1b[2J \x9b31m \u2028 end"
        server = servers.http(lambda request: json_reply(400, {"detail": detail}))
        settings = dict(cli_settings(server), XANADU_CLOUD_ACCESS_TOKEN=ACCESS_TOKEN)
        code, out, err = run_cli(["request", "GET", "/x"], settings)
        assert code == 1
        assert_one_error_line(err)
        assert "no \\x1b]0;owned\\x07\\x1b[2J \\x9b31m \\u2028 end" in err
        assert not set("\x1b\x07\x9b\u2028") & set(err)

    @pytest.mark.parametrize(
        "args",
        [["frobnicate"], [], ["request", "GET"], ["request", "GET", "/echo", "--param", "novalue"],
         ["request", "POST", "/echo", "--json", "{bad"],
         ["request", "POST", "/echo", "--json", "[" * 100000], ["--port", "http", "ping"],
         ["--port", "-5", "ping"], ["--port", "0", "ping"], ["--port", "65536", "ping"],
         ["--timeout", "-1", "ping"], ["--timeout", "0", "ping"], ["--timeout", "nan", "ping"]],
    )  # fmt: skip
    def test_usage_error_exits_2_with_one_line(self, cloud, args):
        code, out, err = run_cli(args, cli_settings(cloud))
        assert code == 2
        assert out == ""
        assert_one_error_line(err)
        assert [r.path for r in cloud.requests if r.path != TOKEN_PATH] == []

    def test_usage_error_is_reported_before_the_settings_are_read(self):
        code, _, err = run_cli(["request", "GET", "/echo", "--param", "novalue"])
        assert code == 2
        assert_one_error_line(err)
        assert "--param takes KEY=VALUE" in err

    def test_a_malformed_header_option_is_not_repeated(self):
        # "Authorization Bearer <token>", its colon forgotten: the usage error is one line in
        # a shell's or a CI's log, without the token.
        header = "Authorization " + ACCESS_TOKEN
        code, _, err = run_cli(["request", "GET", "/x", "--header", header])
        assert code == 2
        assert_one_error_line(err)
        assert "--header takes NAME:VALUE" in err
        assert_not_leaked(err, ACCESS_TOKEN[:12])

    def test_a_negative_timeout_is_told_in_the_command_lines_terms(self):
        code, _, err = run_cli(["--timeout", "-1", "ping"])
        assert code == 2
        assert err.startswith("xcc.py: error: argument --timeout: '-1' is not a number of")
        assert "pair" not in err

    def test_usage_under_python_m_names_python_m_xcc(self):
        code, out, _ = run_cli(["--help"], module=True)
        assert (code, out.split()[:4]) == (0, ["usage:", "python", "-m", "xcc"])
        code, _, err = run_cli(["frobnicate"], module=True)
        assert code == 2
        assert err.startswith("python -m xcc: error: argument COMMAND: invalid choice")

    def test_help_of_request_describes_each_option(self):
        code, out, _ = run_cli(["request", "--help"])
        assert code == 0
        assert "--param KEY=VALUE    a query parameter" in out
        assert "--header NAME:VALUE  a header field" in out

    def test_help_lists_the_commands(self):
        code, out, _ = run_cli(["--help"])
        assert code == 0
        assert "ping" in out and "request" in out
        assert "--host" in out and "--no-tls" in out

    def test_version_prints_the_version(self):
        code, out, _ = run_cli(["--version"])
        assert code == 0
        assert xcc.__version__ in out

    def test_host_port_and_no_tls_override_the_settings(self, cloud):
        settings = {
            "XANADU_CLOUD_REFRESH_TOKEN": REFRESH_TOKEN,
            "XANADU_CLOUD_HOST": "nothing.invalid",
            "XANADU_CLOUD_PORT": str(closed_port()),
            "XANADU_CLOUD_TLS": "true",
        }
        code, out, err = run_cli(
            ["--host", "127.0.0.1", "--port", str(cloud.port), "--no-tls", "ping"], settings
        )
        assert (code, out, err) == (0, "Successfully connected to the Xanadu Cloud.\n", "")
        assert [r.path for r in cloud.requests] == [TOKEN_PATH, "/healthz"]

    def test_timeout_override_bounds_the_wait(self, servers):
        def silent(sock, index):
            server.read(sock)
            sock.recv(1)  # until the client gives up and closes

        server = servers.raw(silent)
        settings = {
            "XANADU_CLOUD_ACCESS_TOKEN": ACCESS_TOKEN,
            "XANADU_CLOUD_HOST": "127.0.0.1",
            "XANADU_CLOUD_PORT": str(server.port),
            "XANADU_CLOUD_TLS": "false",
        }
        started = time.monotonic()
        code, out, err = run_cli(["--timeout", "0.3", "ping"], settings, timeout=20)
        assert time.monotonic() - started < 8  # far below the default of 10 s
        assert code == 1
        assert_one_error_line(err)
        assert f"GET request to 'http://127.0.0.1:{server.port}/healthz' timed out" in err
        assert len(server.requests) == 1
        assert_not_leaked(out + err, ACCESS_TOKEN)

    def test_no_settings_prints_the_seeds_message(self):
        code, out, err = run_cli(["ping"])
        assert code == 1
        assert out == ""
        assert_one_error_line(err)
        assert MISSING_TOKEN_MESSAGE in err

    def test_connection_refused_exits_1_with_one_line(self):
        port = closed_port()
        settings = {
            "XANADU_CLOUD_ACCESS_TOKEN": ACCESS_TOKEN,
            "XANADU_CLOUD_HOST": "127.0.0.1",
            "XANADU_CLOUD_PORT": str(port),
            "XANADU_CLOUD_TLS": "false",
        }
        code, out, err = run_cli(["request", "GET", "/devices"], settings)
        assert code == 1
        assert out == ""
        assert_one_error_line(err)
        assert f"127.0.0.1:{port}" in err
        assert "shut down" not in err  # only the default host's failure speaks of it
        assert_not_leaked(err, ACCESS_TOKEN)

    def test_invalid_refresh_token_prints_the_seeds_message(self, cloud):
        other = make_jwt(int(time.time()) + 3600, "revoked")
        settings = dict(cli_settings(cloud), XANADU_CLOUD_REFRESH_TOKEN=other)
        code, out, err = run_cli(["ping"], settings)
        assert code == 1
        assert_one_error_line(err)
        message = "Refresh token (e.g., Xanadu Cloud API key) is invalid"
        assert f"400 POST {TOKEN_PATH}: {message}" in err
        assert_not_leaked(out + err, other)

    def test_help_names_the_settings_and_the_settings_file(self):
        code, out, _ = run_cli(["--help"])
        assert code == 0
        for key in ("REFRESH_TOKEN", "ACCESS_TOKEN", "HOST", "PORT", "TLS"):
            assert f"XANADU_CLOUD_{key}" in out
        assert xcc._settings_path() in out

    @pytest.mark.parametrize(
        "dotenv",
        [None, "XANADU_CLOUD_HOST=127.0.0.1\nXANADU_CLOUD_TLS=0\n"],
        ids=["no settings", "settings without a token"],
    )
    def test_missing_token_says_which_variable_or_file_to_set(self, clean_environment, dotenv):
        if dotenv is not None:
            write_home_dotenv(clean_environment, dotenv)
        code, out, err = run_cli(["ping"])
        assert (code, out) == (1, "")
        assert_one_error_line(err)
        assert MISSING_TOKEN_MESSAGE in err
        hint = "Set XANADU_CLOUD_REFRESH_TOKEN to your API key, in the environment or in"
        assert f"{hint} {xcc._settings_path()}." in err

    def test_malformed_token_gets_no_hint_to_set_one(self):
        code, _, err = run_cli(["ping"], {"XANADU_CLOUD_REFRESH_TOKEN": "not a token"})
        assert code == 1
        assert_one_error_line(err)
        assert "XANADU_CLOUD_REFRESH_TOKEN" not in err

    def test_output_cut_by_the_reader_ends_quietly(self, cloud):
        """``python xcc.py request GET /jobs | head -1`` with more output than a pipe holds."""
        jobs = {"data": [{"id": f"job-{n}", "status": "complete"} for n in range(20000)]}
        cloud.handler.routes["/jobs"] = lambda request: json_reply(200, jobs)
        first, code, err = cut_output(cloud, "/jobs", lambda stdout: stdout.readline())
        assert (first, code, err) == (b"{\n", 1, b"")
        assert [r.path for r in cloud.requests] == [TOKEN_PATH, "/jobs"]

    def test_bytes_cut_by_the_reader_end_with_status_1(self, cloud):
        """``python xcc.py request GET /blob | head -c 20``: a body that is not JSON, larger
        than a pipe holds, is written whole or fails on the closed pipe."""
        cloud.handler.routes["/blob"] = lambda request: Reply(200, b"\xff" * 3000000)
        first, code, err = cut_output(cloud, "/blob", lambda stdout: stdout.read(20))
        assert (first, code, err) == (b"\xff" * 20, 1, b"")

    def test_json_nested_too_deep_is_printed_as_sent(self, cloud):
        deep = b"[" * 100000 + b"]" * 100000
        cloud.handler.routes["/deep"] = lambda request: Reply(200, deep)
        code, out, err = run_cli(["request", "GET", "/deep"], cli_settings(cloud))
        assert (code, out, err) == (0, deep.decode(), "")

    def test_output_into_a_pipe_closed_before_it_ends_quietly(self, cloud):
        """``python xcc.py ping | true``: the reader is gone before the line is written."""
        read_end, write_end = os.pipe()
        os.close(read_end)
        try:
            completed = subprocess.run(
                [sys.executable, "xcc.py", "ping"],
                cwd=HERE,
                env=dict(os.environ, **cli_settings(cloud)),
                stdin=subprocess.DEVNULL,
                stdout=write_end,
                stderr=subprocess.PIPE,
                timeout=30,
                check=False,
            )
        finally:
            os.close(write_end)
        assert (completed.returncode, completed.stderr) == (1, b"")
        assert [r.path for r in cloud.requests] == [TOKEN_PATH, "/healthz"]


# ------------------------------------------------------------------------------ offline


class TestStandInCommand:
    """``python offline/standin.py`` as a user runs it: it prints the settings, serves
    ``xcc.py`` and scripts until Ctrl-C, then ends quietly."""

    @contextlib.contextmanager
    def started(self, *args, stop=signal.SIGINT, preexec_fn=None):
        """Runs the command; yields the ``export NAME=value`` settings it printed; then
        stops it with the signal ``stop`` and checks that it ended quietly."""
        process = subprocess.Popen(
            [sys.executable, os.path.join("offline", "standin.py")] + list(args),
            cwd=HERE,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            universal_newlines=True,
            preexec_fn=preexec_fn,
        )
        try:
            settings = {}
            while "XANADU_CLOUD_REFRESH_TOKEN" not in settings:
                line = process.stdout.readline()
                assert line, "standin.py ended before printing its settings"
                if line.startswith("export "):
                    name, _, value = line[len("export ") :].strip().partition("=")
                    settings[name] = value
            yield settings
            process.send_signal(stop)
            assert process.wait(10) == 0
            assert process.stderr.read() == ""
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            process.stdout.close()
            process.stderr.close()

    def test_printed_settings_reach_it_from_the_command_line_and_a_script(self):
        with self.started() as settings:
            assert sorted(settings) == [
                "XANADU_CLOUD_HOST",
                "XANADU_CLOUD_PORT",
                "XANADU_CLOUD_REFRESH_TOKEN",
                "XANADU_CLOUD_TLS",
            ]
            assert settings["XANADU_CLOUD_REFRESH_TOKEN"] == standin.REFRESH_TOKEN
            code, out, err = run_cli(["ping"], settings)
            assert (code, out, err) == (0, "Successfully connected to the Xanadu Cloud.\n", "")
            code, out, err = run_cli(["request", "GET", "/devices/X8_01"], settings)
            assert (code, json.loads(out), err) == (0, standin.X8_01, "")
            connection = xcc.Connection(
                refresh_token=settings["XANADU_CLOUD_REFRESH_TOKEN"],
                host=settings["XANADU_CLOUD_HOST"],
                port=int(settings["XANADU_CLOUD_PORT"]),
                tls=settings["XANADU_CLOUD_TLS"] == "true",
            )
            with connection:
                job = connection.request("POST", "/jobs", json={"circuit": "..."}).json()
                listed = connection.request("GET", "/jobs").json()
            assert listed["data"] == [job]

    @pytest.mark.parametrize(
        "stop, preexec_fn",
        [
            (signal.SIGINT, lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)),
            (signal.SIGTERM, None),
        ],
        ids=["Ctrl-C, started in the background of a script", "kill"],
    )
    def test_stops_quietly(self, stop, preexec_fn):
        with self.started(stop=stop, preexec_fn=preexec_fn) as settings:
            assert run_cli(["ping"], settings)[0] == 0

    def test_port_option_chooses_the_port(self):
        port = closed_port()
        with self.started("--port", str(port)) as settings:
            assert settings["XANADU_CLOUD_PORT"] == str(port)
            assert run_cli(["ping"], settings)[0] == 0

    def test_port_in_use_is_one_line(self, servers):
        server = servers.http(Cloud())
        command = [os.path.join("offline", "standin.py"), "--port", str(server.port)]
        code, out, err = run_python(command)
        assert (code, out) == (1, "")
        assert_one_error_line(err)
        assert f"cannot serve on port {server.port}" in err


def read_npz(data):
    """Returns ``(names in the zip file, the .npy header of arr_0, its rows)`` of an ``.npz``
    file of a 2-D integer array, read as numpy's documented format (no numpy)."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = archive.namelist()
        npy = archive.read("arr_0.npy")
    assert npy[:8] == b"\x93NUMPY\x01\x00"  # the magic string, then version 1.0
    end = 10 + struct.unpack("<H", npy[8:10])[0]
    assert end % 64 == 0 and npy[end - 1 : end] == b"\n"
    header = ast.literal_eval(npy[10:end].decode("latin-1"))
    rows, columns = header["shape"]
    values = struct.unpack("<{}q".format(rows * columns), npy[end:])
    return names, header, [list(values[i * columns : (i + 1) * columns]) for i in range(rows)]


class TestStandInAPI:
    """More of what the stand-in serves to the original package and Strawberry Fields, over
    real sockets to ``xcc.Connection``."""

    @pytest.fixture
    def cloud(self):
        with standin.StandIn() as stand_in:
            stand_in.job_seconds = 0.2
            connection = connect(stand_in, refresh_token=standin.REFRESH_TOKEN, access_token=None)
            yield stand_in, connection
            connection.close()

    @staticmethod
    def submit(connection, shots=3):
        circuit = X8_CIRCUIT.replace("(shots=3)", "(shots={})".format(shots))
        payload = {"name": "job", "target": "X8_01", "circuit": circuit, "language": "bb:1.0"}
        return connection.request("POST", "/jobs", json=payload).json()

    @staticmethod
    def wait(connection, job_id):
        """Polls the job, as ``xcc.Job.wait`` does, until it ends; returns its last record."""
        deadline = time.time() + 10
        while time.time() < deadline:
            record = connection.request("GET", f"/jobs/{job_id}").json()
            if record["status"] in ("cancelled", "complete", "failed"):
                return record
            time.sleep(0.02)
        raise AssertionError(f"the job stayed {record['status']}")

    def test_every_parameter_of_the_layout_has_allowed_values_or_ranges(self, cloud):
        _, connection = cloud
        spec = connection.request("GET", "/devices/X8_01/specifications").json()
        assert sorted(spec) == ["compiler", "gate_parameters", "layout", "modes", "target"]
        names = set(re.findall(r"\{(\w+)\}", spec["layout"]))
        assert names == set(spec["gate_parameters"]) and len(names) == 24
        for allowed in spec["gate_parameters"].values():
            for value in allowed:  # a value, or a [low, high] range, as Strawberry Fields reads
                assert isinstance(value, (int, float)) or (
                    len(value) == 2 and value[0] < value[1]
                ), allowed
        assert spec["gate_parameters"]["phase_11"] == [0, [0, 2 * math.pi]]

    @pytest.mark.parametrize("part", ["specifications", "certificate"])
    def test_an_unknown_devices_specification_and_certificate_are_404(self, cloud, part):
        _, connection = cloud
        with pytest.raises(xcc.HTTPError, match=r"^Device not found\.$") as info:
            connection.request("GET", f"/devices/X9_01/{part}")
        assert info.value.response.status_code == 404

    def test_a_result_has_the_circuits_shots_by_the_devices_modes(self, cloud):
        _, connection = cloud
        job = self.submit(connection, shots=13)
        assert self.wait(connection, job["id"])["status"] == "complete"
        response = connection.request("GET", f"/jobs/{job['id']}/result", stream=True)
        names, header, rows = read_npz(b"".join(response.iter_content(chunk_size=32768)))
        assert names == ["arr_0.npy"]
        assert header == {"descr": "<i8", "fortran_order": False, "shape": (13, 8)}
        assert all(count >= 0 for row in rows for count in row)
        again = connection.request("GET", f"/jobs/{job['id']}/result").content
        assert read_npz(again)[2] == rows  # the same samples at every read

    def test_a_cancelled_job_stays_cancelled_and_has_no_result(self, cloud):
        stand_in, connection = cloud
        stand_in.job_seconds = 30
        job = self.submit(connection)
        cancel = {"status": "cancelled"}
        record = connection.request("PATCH", f"/jobs/{job['id']}", json=cancel).json()
        assert record["status"] == "cancelled" and record["finished_at"] is not None
        stand_in.job_seconds = 0.01
        time.sleep(0.05)
        assert connection.request("GET", f"/jobs/{job['id']}").json()["status"] == "cancelled"
        with pytest.raises(xcc.HTTPError, match=r"^Job result not found") as info:
            connection.request("GET", f"/jobs/{job['id']}/result")
        assert info.value.response.status_code == 404

    def test_the_job_list_filters_as_the_original_sends_them(self, cloud):
        stand_in, connection = cloud
        stand_in.job_seconds = 30
        jobs = [self.submit(connection)["id"] for _ in range(7)]
        connection.request("PATCH", f"/jobs/{jobs[1]}", json={"status": "cancelled"})

        def listed(**params):
            body = connection.request("GET", "/jobs", params=params).json()
            return [job["id"] for job in body["data"]], body["meta"]["count"]

        assert listed() == (jobs[::-1][:5], 7)  # the newest first, 5 by default
        assert listed(size=2) == (jobs[::-1][:2], 7)
        assert listed(size=2, id=[jobs[0], jobs[3], "other"]) == ([jobs[3], jobs[0]], 2)
        assert listed(size=5, status="cancelled") == ([jobs[1]], 1)
        assert listed(size=5, status="open", id=[jobs[1], jobs[2]]) == ([jobs[2]], 1)


# ----------------------------------------------------------------------------- annotations


def annotated(namespace):
    """Yields ``(qualified name, annotations)`` of each function, method and property of
    ``namespace`` (a module or a class), its classes' included."""
    for member in vars(namespace).values():
        if isinstance(member, type) and member.__module__ == "xcc":
            yield from annotated(member)
        function = getattr(member, "fget", None) or getattr(member, "__func__", member)
        if inspect.isfunction(function) and function.__module__ == "xcc":
            yield function.__qualname__, function.__annotations__


class TestAnnotations:
    """Typed for checkers at no cost at run time (mypy --strict runs in .ci/run)."""

    def test_import_xcc_does_not_import_typing(self):
        # -S: no site-packages' .pth files, which import typing in some environments.
        code, out, err = run_python(["-S", "-c", "import sys, xcc; print('typing' in sys.modules)"])
        assert (code, out, err) == (0, "False\n", "")

    def test_every_function_is_annotated_with_strings_or_builtin_classes(self):
        cheap = {None, str, int, float, bool, bytes, object, BaseException, Exception}
        found = list(annotated(xcc))
        names = {name for name, _ in found}
        assert {"Connection.request", "Response.iter_content", "Connection.access_token"} <= names
        assert [name for name, annotations in found if "return" not in annotations] == []
        assert [
            (name, value)
            for name, annotations in found
            for value in annotations.values()
            if not isinstance(value, str) and value not in cheap
        ] == []
        assert all(isinstance(value, str) for value in xcc.__annotations__.values())
