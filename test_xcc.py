"""Tests of xcc.py over real sockets, against loopback servers that the tests start.

Nothing here mocks ``http.client``, ``urllib``, ``socket`` or xcc's internals: every test
sends real bytes to a server of :mod:`loopback` (or the Xanadu Cloud stand-in of
:mod:`standin`) and asserts what a user would observe: what reached the server, what came
back, what was raised. Run with ``python -m pytest``.
"""

import base64
import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

import xcc
from loopback import Proxy, RawServer, Reply, ScriptedServer, json_reply, make_certificates
from loopback import read_request, server_context

HERE = os.path.dirname(os.path.abspath(__file__))


def make_jwt(exp, subject="user"):
    """Returns an unsigned JWT whose ``exp`` claim is ``exp`` (Unix seconds)."""

    def segment(obj):
        raw = json.dumps(obj).encode("utf-8")
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    return ".".join([segment({"alg": "none"}), segment({"sub": subject, "exp": exp}), "sig"])


REFRESH_TOKEN = make_jwt(int(time.time()) + 10 * 365 * 86400, "refresh")
ACCESS_TOKEN = make_jwt(int(time.time()) + 3600, "access")
TOKEN_PATH = "/auth/realms/platform/protocol/openid-connect/token"

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
        self._started = []

    def http(self, handler=None, tls=None):
        """Returns a running :class:`loopback.ScriptedServer`."""
        return self._start(ScriptedServer(handler, tls))

    def raw(self, serve, tls=None):
        """Returns a running :class:`loopback.RawServer`."""
        return self._start(RawServer(serve, tls))

    def proxy(self, credentials=None, refuse=None):
        """Returns a running :class:`loopback.Proxy`."""
        return self._stack.enter_context(Proxy(credentials, refuse))

    def _start(self, server):
        self._stack.enter_context(server)
        self._started.append(server)
        return server

    def close(self):
        for server in self._started:
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
            token = make_jwt(int(time.time()) + 3600, "access-%d" % len(self.issued))
            self.issued.append(token)
            self.valid = {token}
            return json_reply(200, {"access_token": token})
        if request.headers.get("authorization", "")[len("Bearer ") :] not in self.valid:
            return json_reply(401, {"detail": "Invalid or expired access token."})
        route = self.routes.get(request.path)
        return route(request) if route else json_reply(200, {"path": request.path})
