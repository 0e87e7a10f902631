# Copyright 2026 the xcc.py authors
# SPDX-License-Identifier: Apache-2.0
# Licensed under the Apache License 2.0: see LICENSE, or https://www.apache.org/licenses/LICENSE-2.0
"""The Xanadu Cloud Client's Connection in one file of standard-library Python.

``xcc.py`` gives a script the ``xcc.Connection`` of the Xanadu Cloud Client without
``requests``, ``urllib3``, ``certifi`` or any other package: it needs nothing but the
standard library of CPython 3.6 to 3.13. Copy the file next to your script (or
``pip install .`` its folder) and use it as the original documents:

    >>> import xcc
    >>> connection = xcc.Connection(refresh_token="Xanadu Cloud API key goes here")
    >>> connection.ping()
    <Response [200]>
    >>> connection.request(method="GET", path="/devices/X8_01").json()["status"]
    'online'

What it adds to the original: connections are kept alive and shared by every
``Connection`` in the process; many threads that meet an expired token cause one
refresh; the retry after a 401 keeps the request's own headers; the proxy and
CA-bundle variables that ``requests`` reads are honoured the same way on every Python
version; and no ``repr`` or error message ever shows a token.

From a shell: ``python xcc.py ping`` or ``python xcc.py request GET /devices`` with the
settings that the original client's ``xcc config`` saved (``python xcc.py --help``).
What it does (proxy, CA, connections, TLS, requests) is logged at DEBUG on the ``xcc``
logger, and printed on stderr by ``python xcc.py -v ...``.
"""

import io
import itertools
import os
import select
import socket
import sys
import threading
import time
from collections import OrderedDict, namedtuple
from collections.abc import MutableMapping

# Type annotations are strings that only a type checker reads, and the names they use are
# imported for it alone (mypy and pyright take this name as typing.TYPE_CHECKING): at run
# time ``import typing`` would cost as much as ``import xcc`` itself (over 10 ms on 3.6).
TYPE_CHECKING = False


if TYPE_CHECKING:
    import argparse
    import ipaddress
    import logging
    import ssl
    import zlib
    from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
    from typing import IO, Any, NoReturn, TypeVar

    _Origin = tuple[str, str, int]  # (scheme, lower-cased host, port)
    _Timeouts = tuple[float | None, float | None]  # (connect, read); None: forever
    _Verify = bool | str
    # A _Pool key: (origin, the proxy's key or None, the verify setting or None for http).
    _Key = tuple[_Origin, tuple[str, object] | None, _Verify | None]
    _Pairs = Mapping[Any, Any] | Sequence[tuple[Any, Any]]
    _HeadersBase = MutableMapping[str, str]
    _Self = TypeVar("_Self")  # a subclass's __enter__ returns the subclass
    _Connection = TypeVar("_Connection", bound="Connection")
    _Error = TypeVar("_Error", bound=BaseException)
else:
    _HeadersBase = MutableMapping  # collections.abc is not subscriptable before 3.9


# Modules that only some calls need (ssl, zlib, json, base64, urllib.parse, ipaddress,
# argparse) are imported where they are used, so that ``import xcc`` stays cheap.
__version__ = "0.2.1"

__all__ = [
    "ConnectTimeout",
    "Connection",
    "ConnectionError",
    "HTTPError",
    "ProxyError",
    "ReadTimeout",
    "RequestException",
    "Response",
    "SSLError",
    "Timeout",
    "TooManyRedirects",
    "__version__",
]

_DEFAULT_HOST = "platform.strawberryfields.ai"


# ---------------------------------------------------------------------------- Connection


class Connection:
    """Represents a connection to the Xanadu Cloud.

    Args:
        refresh_token (str, optional): JWT refresh token, such as a Xanadu Cloud API key,
            that is used to fetch access tokens from the Xanadu Cloud
        access_token (str, optional): JWT access token that is used to authenticate
            requests to the Xanadu Cloud; missing, invalid, or expired access tokens are
            replaced using the refresh token
        host (str): hostname of the Xanadu Cloud server
        port (int): port of the Xanadu Cloud server (a string of digits is read as one)
        tls (bool): whether to use HTTPS for the connection (``1`` and ``0`` are taken too)
        headers (Dict[str, str], optional): HTTP request headers to override

    Raises:
        ValueError: if both the refresh token and access token are ``None`` (or empty), if
            a token cannot be sent in a header (a control character such as CR, LF or NUL),
            or if the host, port or a header is invalid
        TypeError: if an argument has the wrong type

    **Example:**

    >>> import xcc
    >>> connection = xcc.Connection(refresh_token="Xanadu Cloud API key goes here")
    >>> connection.ping()
    <Response [200]>
    >>> response = connection.request(method="GET", path="/devices/X8_01")
    >>> response
    <Response [200]>
    >>> response.json()["status"]
    'online'

    One ``Connection`` may be used by many threads at once. Its sockets are kept alive in a
    pool shared by every ``Connection`` of the process; :meth:`close` (or a ``with`` block)
    closes the idle ones of its server.
    """

    def __init__(
        self,
        refresh_token: "str | None" = None,
        access_token: "str | None" = None,
        host: str = _DEFAULT_HOST,
        port: "int | str" = 443,
        tls: bool = True,
        headers: "dict[str, str] | None" = None,
    ) -> None:
        try:
            refresh_token = _check_token("refresh token", refresh_token)
            access_token = _check_token("access token", access_token)
            if refresh_token is None and access_token is None:
                raise ValueError(_NO_TOKEN)
            host = _require(host, str, "host must be a string")
            if not _valid_host(host):
                wanted = "give a hostname or an IP address, no port"
                raise ValueError(f"Invalid host {host!r}: {wanted}")
            # The original takes a port "8000" and a tls of 1 and uses them: so does this.
            if isinstance(port, str) and port and _DIGITS.issuperset(port):
                port = int(port)
            if isinstance(port, bool) or not isinstance(port, int):
                raise TypeError(f"port must be an int or a string of digits, not {port!r}")
            if not 0 < port < 65536:
                raise ValueError(f"Invalid port {port!r}: a port is 1 to 65535")
            if not isinstance(tls, int) or tls not in (0, 1):  # a bool is an int
                raise TypeError(f"tls must be True or False (or 1 or 0), not {tls!r}")
            checked = _check_headers(headers, allow_none=False)

            self._refresh_token = refresh_token
            self._host = host
            self._port = port
            self._tls = bool(tls)
            self._headers: dict[str, str] = dict(checked)
            self._origin = (self.scheme, host.lower(), port)
            # What every request masks: the API key and the credentials in `headers`; each
            # request adds its access tokens, its own credentials and its proxy's.
            self._secrets: list[str | None] = [refresh_token, *_credentials_in(checked)]
            # What every request sends but the access token, in the order of `headers`.
            ours = [("Accept-Version", self.api_version), ("User-Agent", self.user_agent)]
            self._base_headers = _Headers(ours + _TRANSPORT_HEADERS + checked)
            self._lock, self._lock_pid = threading.Lock(), os.getpid()
            # How many refreshes failed, the last error and the settings it failed with.
            self._failed_refresh: tuple[int, Any, Any] = (0, None, None)
            self._set_access_token(access_token)
        except (TypeError, ValueError) as exc:
            # This frame is the one the error keeps (see _mask_error): no token or Authorization
            # in its locals, and no half-built self, whose repr would fail.
            del self, refresh_token, access_token, headers
            checked = []  # the constructor's headers, its Authorization too
            raise _mask_error(exc, ())

    @property
    def access_token(self) -> "str | None":
        """Optional[str]: Returns the access token used to authenticate requests to the
        Xanadu Cloud, ``None`` until one is fetched."""
        return self._token[0]

    @property
    def api_version(self) -> str:
        """str: Returns the "Accept-Version" header included in requests to the Xanadu Cloud."""
        return self._headers.get("Accept-Version", _DEFAULT_API_VERSION)

    @property
    def headers(self) -> "dict[str, str]":
        """Dict[str, str]: Returns the headers included in requests to the Xanadu Cloud."""
        return {
            "Accept-Version": self.api_version,
            "Authorization": f"Bearer {self.access_token}",
            "User-Agent": self.user_agent,
            **self._headers,
        }

    @property
    def host(self) -> str:
        """str: Returns the host of the URL used to send requests to the Xanadu Cloud."""
        return self._host

    @property
    def port(self) -> int:
        """int: Returns the port of the URL used to send requests to the Xanadu Cloud."""
        return self._port

    @property
    def refresh_token(self) -> "str | None":
        """Optional[str]: Returns the refresh token used to fetch access tokens."""
        return self._refresh_token

    @property
    def scheme(self) -> str:
        """str: Returns the scheme of the URL used to send requests to the Xanadu Cloud."""
        return "https" if self._tls else "http"

    @property
    def tls(self) -> bool:
        """bool: Returns whether HTTPS is used for the connection to the Xanadu Cloud."""
        return self._tls

    @property
    def user_agent(self) -> str:
        """str: Returns the "User-Agent" header included in requests to the Xanadu Cloud."""
        return self._headers.get("User-Agent", f"XCC/{__version__} (API)")

    def ping(self) -> "Response":
        """Pings the Xanadu Cloud.

        Returns:
            Response: HTTP response of the ping HTTP request

        Raises:
            RequestException: if there was an issue sending the ping request to the Xanadu
                Cloud or the status code of the HTTP response indicates that an error
                occurred (i.e., 4XX or 5XX)
        """
        return self.request("GET", "/healthz")

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: "Mapping[str, str | bytes | None] | None" = None,
        params: "str | bytes | _Pairs | None" = None,
        data: "bytes | bytearray | memoryview | str | IO[Any] | _Pairs | None" = None,
        json: "Any" = None,
        timeout: "float | tuple[float | None, float | None] | None" = 10,
        stream: bool = False,
        allow_redirects: bool = True,
        verify: "bool | str | os.PathLike[str]" = True,
        proxies: "Mapping[str, str | None] | None" = None,
    ) -> "Response":
        """Sends an HTTP request to the Xanadu Cloud.

        The keyword arguments mean what they mean to ``requests.request()``. Everything is
        checked before a byte is sent.

        Args:
            method (str): HTTP request method, such as ``"GET"``
            path (str): HTTP request path, such as ``"/jobs"``; it cannot change the host
            headers (Mapping[str, Optional[str]], optional): headers merged
                case-insensitively over :attr:`headers`; a ``None`` value removes a header
                (a ``bytes`` value is read as Latin-1)
            params (str, bytes, Mapping or Sequence[Tuple], optional): query parameters; a
                ``None`` value is left out and a list value repeats the key
            data (bytes, str, file, Mapping or Sequence[Tuple], optional): the body; a
                mapping or pairs are form-encoded, a binary or text file is read whole
            json (object, optional): a body serialised as JSON (without NaN or Infinity)
            timeout (float or Tuple[float, float], optional): seconds to wait for the
                server, or a ``(connect, read)`` pair; ``None`` waits forever. The connect
                timeout bounds connecting, a proxy's tunnel and the TLS handshake together;
                the read timeout bounds each read, as in requests, not the whole response:
                a server that sends a byte now and then keeps a request going
            stream (bool): whether to leave the body unread until :meth:`Response.iter_content`
                or :attr:`Response.content` is used
            allow_redirects (bool): whether to follow redirects (up to 30)
            verify (bool, str or os.PathLike): whether to verify the server's TLS
                certificate, or the path of a CA bundle file or directory to verify it with
            proxies (Mapping[str, Optional[str]], optional): proxy URLs by scheme, such as
                ``{"https": "http://proxy:3128"}`` (``None``: no proxy); by default the
                ``*_PROXY`` variables

        Returns:
            Response: HTTP response to the HTTP request

        Raises:
            RequestException: if there was an issue sending the HTTP request or the status
                code of the HTTP response indicates that an error occurred (i.e., 4XX or
                5XX); see :class:`HTTPError`, :class:`ConnectionError`, :class:`Timeout`
            ValueError: if an argument is invalid (nothing is sent)
            TypeError: if an argument has the wrong type (nothing is sent)

        .. note::

            A second HTTP request will be made to the Xanadu Cloud if the HTTP response to
            the first request has a 401 status code. The second request will be identical
            to the first one except that a fresh access token will be used.
        """
        options = None
        try:
            secrets = self._secrets + [self.access_token]
            options = _Options(secrets, timeout, verify, proxies)
            options.stream, options.allow_redirects = bool(stream), bool(allow_redirects)
            return self._request(method, path, headers, params, data, json, options)
        except (RequestException, ValueError, TypeError) as exc:
            # This frame is the one the error keeps (see _mask_error): none of the caller's
            # credentials (or other values) in its locals.
            headers = params = data = json = proxies = secrets = None
            raise _mask_error(exc, options.secrets + [self.access_token] if options else ())

    def _request(
        self,
        method: str,
        path: str,
        headers: "Mapping[str, str | bytes | None] | None",
        params: "str | bytes | _Pairs | None",
        data: "Any",
        json: "Any",
        options: "_Options",
    ) -> "Response":
        """Checks and sends a request (see :meth:`request`); its errors are not masked yet."""
        method = _check_method(method)
        path = _require(path, str, "path must be a string")
        if not _CONTROL_CHARS.isdisjoint(path):
            raise ValueError(f"The path {path!r} holds a control character such as CR, LF or NUL")
        target = "/" + _requote(path.partition("#")[0].lstrip("/"))
        query = _encode_query(params) if params else ""
        if query:
            target += ("" if target.endswith(("?", "&")) else "&" if "?" in target else "?") + query
        extra = _check_headers(headers, allow_none=True)
        options.secrets += _credentials_in(extra)
        body, content_type = _encode_body(data, json)  # last: it may read a file

        def send(token: "str | None") -> "Response":
            # The stale token stays listed after a refresh: a redirect may still echo it.
            if token not in options.secrets:
                options.secrets.append(token)
            merged = self._base_headers.copy()
            if "Authorization" not in merged:
                merged["Authorization"] = f"Bearer {token}"
            for name, value in extra:
                if value is None:
                    merged.pop(name, None)
                else:
                    merged[name] = value
            if content_type and "Content-Type" not in merged:
                merged["Content-Type"] = content_type
            request = _Request(method, self._origin, target, merged, body)
            return _send_following_redirects(request, options)

        token, expiry = self._token
        if self._refresh_token is not None and (
            token is None or expiry is not None and time.time() >= expiry
        ):
            _debug("The access token is %s: refreshing it first", "expired" if token else "missing")
            token = self._refresh(token, options)
        response = send(token)
        if response.status_code == 401 and self._refresh_token and response._credentials_sent:
            _debug("401 for %s %s: refreshing the access token and sending it again", method, path)
            response._discard()
            response = send(self._refresh(token, options))
        if response.status_code >= 400:
            raise _http_error(response, options.secrets)
        return response

    def update_access_token(self) -> None:
        """Updates the access token of a connection using its refresh token.

        Raises:
            RequestException: if there was an issue sending the HTTP request for the access
                token or the status code of the HTTP response indicates that an error
                occurred (i.e., 4XX or 5XX)
            ValueError: if the connection has no refresh token (nothing is sent), or the
                Xanadu Cloud returned an invalid access token response
        """
        options = _Options(self._secrets + [self.access_token])
        try:
            with self._refresh_lock():
                self._update_access_token(options)
        except (RequestException, ValueError) as exc:
            raise _mask_error(exc, options.secrets + [self.access_token])

    def url(self, path: str = "") -> str:
        """Returns the URL to a Xanadu Cloud endpoint.

        Args:
            path (str): path component of the URL

        Returns:
            str: URL containing a scheme, host, port, the provided path
        """
        return f"{self.scheme}://{_netloc(self._host, self._port)}/" + path.lstrip("/")

    @classmethod
    def load(cls: "type[_Connection]", settings: "Any" = None, **overrides: "Any") -> "_Connection":
        """Returns a connection with the settings that the original client's ``xcc config``
        saves: the ``XANADU_CLOUD_REFRESH_TOKEN``, ``XANADU_CLOUD_ACCESS_TOKEN``,
        ``XANADU_CLOUD_HOST``, ``XANADU_CLOUD_PORT`` and ``XANADU_CLOUD_TLS`` environment
        variables, over the same keys in its ``.env`` file (``~/.config/xanadu-cloud/.env``
        on Linux; ``~/Library/Application Support/xanadu-cloud/.env`` on macOS;
        ``%LOCALAPPDATA%\\Xanadu\\xanadu-cloud\\.env`` on Windows).

        Args:
            settings (xcc.Settings, optional): the original client's settings object, whose
                ``REFRESH_TOKEN``, ``ACCESS_TOKEN``, ``HOST``, ``PORT`` and ``TLS`` are used
                instead of reading them (``None`` values are left out)
            **overrides: arguments of :class:`Connection` that win over the settings

        Returns:
            Connection: the connection

        Raises:
            ValueError: if a setting is invalid; the message names the variable or file
        """
        values: dict[str, Any] = {}
        try:
            if settings is None:
                values = _load_settings()
            else:
                for key in _SETTINGS:
                    if getattr(settings, key, None) is not None:
                        values[key.lower()] = getattr(settings, key)
            values.update(overrides)
            return cls(**values)
        except (TypeError, ValueError) as exc:
            # This frame is the one the error keeps (see _mask_error): no token in its locals.
            settings = None
            values.clear()
            overrides.clear()
            raise _mask_error(exc, ())

    def close(self) -> None:
        """Closes the idle sockets to this connection's server. The connection stays usable."""
        _POOL.close(self._origin)

    def __enter__(self: "_Self") -> "_Self":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        refresh, access = ("<set>" if t else None for t in (self._refresh_token, self.access_token))
        name = type(self).__name__
        return f"<{name}: refresh_token={refresh}, access_token={access}, url={self.url()}>"

    def _refresh(self, stale: "str | None", options: "_Options") -> "str | None":
        """Replaces the access token ``stale``; threads that saw it share one token request and
        its token or error (N threads must not wait N timeouts), none longer than its timeout."""
        failures = self._failed_refresh[0]
        settings = (options.timeouts, options.verify, options.proxies)
        connect_timeout, read_timeout = options.timeouts
        wait = -1.0
        if connect_timeout is not None and read_timeout is not None:
            wait = min(connect_timeout + read_timeout, threading.TIMEOUT_MAX)
        lock = self._refresh_lock()
        if not lock.acquire(timeout=wait):
            waiting = "waiting for another thread's token refresh"
            raise Timeout(f"POST request to '{self.url(_TOKEN_PATH)}' timed out ({waiting})")
        try:
            import copy

            if self._token[0] != stale:
                return self._token[0]
            # One failed while this thread waited: with the same settings, this one would fail
            # alike (with others, such as verify=False, it may not).
            count, error, failed_settings = self._failed_refresh
            if count != failures and failed_settings == settings:
                raise copy.copy(error) from error
            try:
                self._update_access_token(options)
            except (RequestException, ValueError) as exc:
                _mask_error(exc, options.secrets + [stale])
                # A copy, without the traceback: its frames hold the form with the API key.
                self._failed_refresh = (count + 1, copy.copy(exc), settings)
                raise
            return self._token[0]
        finally:
            lock.release()

    def _update_access_token(self, options: "_Options") -> None:
        """Fetches a new access token; the caller holds the refresh lock."""
        if self._refresh_token is None:
            missing = (
                "no refresh token (e.g., Xanadu Cloud API key) to update its access token with"
            )
            raise ValueError(f"This connection has {missing}")
        key = _encode_pairs([("", self._refresh_token)])[1:]  # "/" as "%2F": a server may echo it
        options.secrets.append(key)
        body = f"grant_type=refresh_token&refresh_token={key}&client_id=public".encode("ascii")
        form = [("Content-Type", "application/x-www-form-urlencoded")]
        headers = _Headers([("User-Agent", self.user_agent)] + _TRANSPORT_HEADERS + form)
        # The refresh token never follows a redirect: it is the key to the account. The
        # secrets are shared: the caller masks its error with the proxy's credentials too.
        options = _Options(options.secrets, options.timeouts, options.verify, options.proxies)
        _debug("Fetching a new access token from %s", self.url(_TOKEN_PATH))
        request = _Request("POST", self._origin, _TOKEN_PATH, headers, body)
        response = _send_following_redirects(request, options)
        if response.status_code == 400 and _json_object(response).get("error") == "invalid_grant":
            invalid = "Refresh token (e.g., Xanadu Cloud API key) is invalid"
            raise HTTPError(invalid, response=response)
        response.raise_for_status()
        try:
            # Not response.json(): its JSONDecodeError would carry the whole body, which may
            # repeat the API key, into the chained cause.
            token = _json_object(response)["access_token"]
            if not isinstance(token, str) or _check_token("access token", token) is None:
                raise TypeError("the access token is not a string that can be sent")
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError("Xanadu Cloud returned an invalid access token response.") from exc
        self._set_access_token(token, fetched=True)
        _debug("Got a new access token, valid until %s", _utc(self._token[1]))

    def _set_access_token(self, token: "str | None", fetched: bool = False) -> None:
        """Sets the access token and its expiry; ``fetched`` if the token endpoint sent it."""
        expiry = _jwt_expiry(token) if token else None
        if fetched and expiry is not None and expiry <= time.time():
            # This machine's clock runs ahead of the server's: let the server judge the new
            # token, rather than fetch another before every request.
            expiry = None
        # One tuple, so that a thread never sees a new token with the old expiry.
        self._token = (token, expiry)

    def _refresh_lock(self) -> "threading.Lock":
        """Returns the lock that one token refresh at a time holds; a forked child makes its
        own, as the parent's may have been held by another thread at the fork."""
        if self._lock_pid != os.getpid():
            self._lock, self._lock_pid = threading.Lock(), os.getpid()
        return self._lock


# ------------------------------------------------------------------------------ Response


class Response:
    """The server's answer to a request: the members of ``requests.Response`` that code
    written for the Xanadu Cloud Client uses.

    Attributes:
        status_code (int): the HTTP status code, such as ``200``
        reason (str): the reason phrase, such as ``"OK"``
        headers (MutableMapping[str, str]): the header fields; names are case-insensitive
        url (str): the URL that answered, after redirects
    """

    def __init__(
        self, status_code: int, reason: str, headers: "_HeadersBase", url: str, body: "_Body"
    ) -> None:
        self.status_code = status_code
        self.reason = reason
        self.headers = headers
        self.url = url
        self._body = body
        self._content: bytes | None = None
        self._consumed = False
        # The start of a streamed error body, read to word its HTTPError, and the decoded
        # pieces after it (see _peek): the caller reads both, as if nothing had been read.
        self._peeked: tuple[bytes, Iterator[bytes]] = (b"", iter(()))
        # False after a redirect to another origin: see _send_following_redirects.
        self._credentials_sent = True

    def __repr__(self) -> str:
        return f"<Response [{self.status_code}]>"

    def __bool__(self) -> bool:
        return self.ok

    def __enter__(self: "_Self") -> "_Self":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def ok(self) -> bool:
        """bool: whether the status code is below 400."""
        return self.status_code < 400

    @property
    def content(self) -> bytes:
        """bytes: the whole body, decoded if it was sent with gzip or deflate.

        It is held in memory whole, by definition: a compressed body of a megabyte may
        decode to gigabytes. To read a body of unknown size in bounded memory, request it
        with ``stream=True`` and read it with :meth:`iter_content`.

        Raises:
            ConnectionError: if the connection broke before the end of the body
            Timeout: if the server stopped sending for longer than the read timeout
            RuntimeError: if :meth:`iter_content` already consumed the body
        """
        if self._content is None:
            if self._consumed or self._peeked[0] or "Content-Encoding" in self.headers:
                self._content = b"".join(self.iter_content(None))
            else:  # the common case, without the generators: 3 % of a request
                self._consumed = True
                self._content = self._body.read()
        return self._content

    @property
    def text(self) -> str:
        """str: the body decoded with the charset of ``Content-Type``, else UTF-8."""
        charset = "utf-8"
        for parameter in self.headers.get("Content-Type", "").split(";")[1:]:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "charset" and value.strip(" \"'"):
                charset = value.strip(" \"'")
        try:
            return self.content.decode(charset, errors="replace")
        except (LookupError, UnicodeError):  # the idna codec refuses errors="replace"
            return self.content.decode("utf-8", errors="replace")

    def json(self, **kwargs: "Any") -> "Any":
        """Returns the body parsed as JSON.

        Args:
            **kwargs: keyword arguments of ``json.loads()``

        Returns:
            Any: the parsed body

        Raises:
            ValueError: if the body is not JSON
            RecursionError: if the JSON is nested too deep for the interpreter
        """
        import json

        return json.loads(self.content, **kwargs)

    def raise_for_status(self) -> None:
        """Raises :class:`HTTPError` if the status code is 4XX or 5XX.

        Raises:
            HTTPError: worded as requests words it, ``"404 Client Error: Not Found for url:
                ..."``, with :attr:`HTTPError.response` set to this response
        """
        if 400 <= self.status_code < 600:
            raise HTTPError(self._status_message(), response=self)

    def iter_content(self, chunk_size: "int | None" = 1) -> "Iterator[bytes]":
        """Returns an iterator over the body in pieces of ``chunk_size`` bytes, decoded if it
        was sent with gzip or deflate (a decoded piece is never larger than ``chunk_size``).
        With ``stream=True`` the pieces are read from the socket as they are asked for, so
        memory stays flat for any body size, a decompression bomb's included.

        Args:
            chunk_size (int, optional): bytes read per piece; ``None`` for 64 KiB

        Raises:
            ConnectionError: (while iterating) if the connection broke before the end
            Timeout: (while iterating) if the server stopped sending for longer than the
                read timeout
            RuntimeError: if the body was already consumed by an earlier iteration
            TypeError: if ``chunk_size`` is not a positive int or ``None``
        """
        invalid = isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1
        if chunk_size is not None and invalid:
            raise TypeError(f"chunk_size must be a positive int or None, not {chunk_size!r}")
        # A size beyond any body is one read of at most _MAX_READ (zlib takes a C ssize_t).
        size = min(chunk_size or 65536, _MAX_READ)
        if self._content is not None:
            return self._resume(size)
        if self._consumed:
            raise RuntimeError("The content of this response was already consumed")
        self._consumed = True
        return self._resume(size) if self._peeked[0] else self._decoded(size)

    def close(self) -> None:
        """Releases the connection; one not read to the end of its body is closed, not reused."""
        self._body.close()

    def _decoded(self, size: int) -> "Iterator[bytes]":
        """Yields the body read ``size`` bytes at a time, decoded in pieces of at most ``size``
        bytes if it was sent compressed."""
        try:
            pieces = iter(lambda: self._body.read(size), b"")
            for decoder in self._decoders():
                pieces = decoder.decode(pieces, size)
            yield from pieces
        except RequestException:
            self._body.close()  # a corrupt body leaves the socket in an unknown state
            raise

    def _decoders(self) -> "list[_Decoder]":
        """Returns the decoders of ``Content-Encoding``, the last coding first: none for a body
        only in codings not asked for (``br``), as requests; one decodable in part is refused."""
        value = self.headers.get("Content-Encoding", "")
        codings = [coding.strip() for coding in value.lower().split(",")]
        codings = ["gzip" if c == "x-gzip" else c for c in codings if c not in ("", "identity")]
        if not {"gzip", "deflate"}.intersection(codings):
            return []
        if len(codings) > _MAX_CODINGS or not {"gzip", "deflate"}.issuperset(codings):
            what = f"Content-Encoding {value!r} (gzip and deflate only, at most {_MAX_CODINGS})"
            raise ConnectionError(f"{self._body.label} failed: cannot decode {what}")
        return [_Decoder(coding, self._body.label) for coding in reversed(codings)]

    def _peek(self, limit: int) -> "bytes | None":
        """Returns a streamed body if it decodes to at most ``limit`` bytes, else ``None``, having
        read at most ``limit`` bytes more (an error body may be endless), kept for the caller."""
        if self._content is None and not self._consumed:
            pieces = self._decoded(8192)
            start = b""
            for piece in pieces:
                start += piece
                if len(start) > limit:
                    self._peeked = (start, pieces)
                    return None
            self._consumed, self._content = True, start
        return self._content

    def _resume(self, size: int) -> "Iterator[bytes]":
        """Yields what :meth:`_peek` read, then the rest (or the whole :attr:`content`), in
        pieces of at most ``size`` bytes."""
        start, rest = self._peeked if self._content is None else (self._content, iter(()))
        self._peeked = (b"", iter(()))
        for piece in itertools.chain((start,), rest):
            for i in range(0, len(piece), size):
                yield piece[i : i + size]

    def _discard(self) -> None:
        """Drops the body; a short one is read to its end so that its socket is reused."""
        if not self._consumed:
            try:
                self._body.drain(65536)  # unread bytes worth reading to keep the socket
            except RequestException:
                pass  # the socket is closed; the response was answered anyway
        self.close()

    def _status_message(self) -> str:
        """Returns requests' wording of an error status."""
        kind = "Client" if self.status_code < 500 else "Server"
        reason = _printable(self.reason)  # UTF-8 may hold a C1 control or U+2028
        return f"{self.status_code} {kind} Error: {reason} for url: {self.url}"


# ---------------------------------------------------------------------------- exceptions


class RequestException(OSError):
    """Base of every error raised for an I/O or HTTP problem, as in ``requests``.

    Args:
        message (str): what went wrong
        response (Response, optional): the response that the error is about, if any
    """

    def __init__(self, message: str = "", response: "Response | None" = None) -> None:
        super().__init__(message)
        self.response = response
        if "requests.exceptions" in sys.modules:  # the caller's `except requests...` catches it
            self.__class__ = _with_requests_class(type(self))


class HTTPError(RequestException):
    """The server answered with a 4XX or 5XX status code."""


class ConnectionError(RequestException):  # shadows the builtin here, as in requests
    """The server could not be reached, or the connection broke before a whole response."""


class ProxyError(ConnectionError):
    """The proxy refused the connection or the tunnel, or wants other credentials (407)."""


class SSLError(ConnectionError):
    """The TLS handshake failed, for example because the certificate did not verify."""


class Timeout(RequestException):
    """The server did not connect or answer within the timeout."""


class ConnectTimeout(ConnectionError, Timeout):
    """Connecting to the server took longer than the connect timeout."""


class ReadTimeout(Timeout):
    """The server sent nothing for longer than the read timeout."""


class TooManyRedirects(RequestException):
    """The request was redirected more than 30 times."""


# ========================================================================================
# End of the public API. Below it, the internals, in the order a request flows through them.


# ----------------------------------------------------------------------------- constants

_DEFAULT_API_VERSION = "0.4.0"
_NO_TOKEN = (
    "A refresh token (e.g., Xanadu Cloud API key) or an access token must be provided to"
    " connect to the Xanadu Cloud."
)
_TOKEN_PATH = "/auth/realms/platform/protocol/openid-connect/token"
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Sent with every request, the token request too; the module decodes these encodings.
_TRANSPORT_HEADERS = [("Accept-Encoding", "gzip, deflate"), ("Accept", "*/*")]

_MAX_REDIRECTS = 30  # as requests
# Methods that may be sent again when a kept-alive socket turns out dead (RFC 9110 §9.2.2).
_IDEMPOTENT_METHODS = frozenset(("GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"))

_MAX_IDLE_PER_SERVER = 10  # idle sockets kept per server, as requests' pool_maxsize
_MAX_POOLS = 10  # servers whose idle sockets are kept, as urllib3's PoolManager(num_pools)
_MAX_IDLE_SECONDS = 60.0  # an idle socket older than this is closed, not reused
_SWEEP_SECONDS = 5.0  # how often the pool checks every idle socket at most
# The longest timeout accepted: poll() takes an int of milliseconds, and a longer timeout
# either overflows (OverflowError after the socket is open) or wraps around.
_MAX_TIMEOUT = 2147483  # seconds, about 24.8 days: INT_MAX milliseconds
_MAX_LINE = 65536  # longest chunk-size or trailer line accepted, as http.client's lines
_MAX_HEADERS = 100  # most header lines accepted, folded ones included, as http.client
# The whole response head, status line and folded lines included. http.client bounds only
# each line (100 of 64 KiB: 6.4 MB) and h11 the head to 16 KiB; 64 KiB holds any real
# answer's cookies and policies, and a head is read and checked in time linear in it.
_MAX_HEAD = 65536
_MAX_INTERIM = 10  # interim (1xx) responses skipped before the final one (each one a head)
_MAX_CODINGS = 5  # stacked Content-Encodings decoded, as urllib3 after CVE-2025-66418
_MAX_READ = 1 << 20  # the largest single read: a body's announced size is not trusted
_MAX_CACHED = 16  # SSL contexts (per CA bundle), parsed proxies and NO_PROXY matches kept
_MAX_CHAIN = 100  # chained exceptions masked: a cycle or a long chain ends there
_MAX_EXPIRY = 253402300800  # 10000-01-01 in Unix seconds: a later JWT exp is not a date
_MAX_DETAIL = 1000  # characters of a server's error detail shown in an HTTPError
_MAX_ERROR_BODY = 65536  # decoded bytes of a streamed error body read to find its detail

_CA_BUNDLE_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
# The advice for a certificate that no trusted CA signed; the command line, which has no
# verify=, leaves out _VERIFY_ADVICE.
_VERIFY_ADVICE = "pass verify='/path/to/ca.pem' or "
_CA_ADVICE = (
    "if a proxy or a private CA signs this server's certificate, {}set REQUESTS_CA_BUNDLE,"
    " CURL_CA_BUNDLE, SSL_CERT_FILE or SSL_CERT_DIR to that CA's bundle"
)
# OpenSSL's X509_V_ERR_* codes (x509_vfy.h) of the causes that another CA cannot help.
_NOT_YET_VALID, _EXPIRED = 9, 10
_HOSTNAME_MISMATCH, _IP_ADDRESS_MISMATCH = 62, 64
_NAME_MISMATCH = frozenset((_HOSTNAME_MISMATCH, _IP_ADDRESS_MISMATCH))

_SETTINGS = ("REFRESH_TOKEN", "ACCESS_TOKEN", "HOST", "PORT", "TLS")
_TRUE_WORDS = frozenset(("1", "on", "t", "true", "y", "yes"))  # the spellings pydantic accepts
_FALSE_WORDS = frozenset(("0", "off", "f", "false", "n", "no"))

_ALPHANUMERIC = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_DIGITS = frozenset("0123456789")
_HEX_DIGITS = frozenset("0123456789ABCDEFabcdef")
# The characters of a method or a header name (RFC 9110 §5.6.2).
_TOKEN_CHARS = frozenset(_ALPHANUMERIC + "!#$%&'*+-.^_`|~")
_HOST_CHARS = frozenset(_ALPHANUMERIC + "-._:")
_CONTROL_CHARS = frozenset([chr(code) for code in range(32)] + ["\x7f"])
_FIELD_CONTROL_CHARS = _CONTROL_CHARS - {"\t"}  # a header value may hold a tab
# The same two sets as bytes, for bytes.translate() to check a response's lines at C speed.
_TOKEN_BYTES = "".join(sorted(_TOKEN_CHARS)).encode("ascii")
_FIELD_CONTROL_BYTES = "".join(sorted(_FIELD_CONTROL_CHARS)).encode("ascii")
# What stands unencoded in a URL (RFC 3986 §2.2-2.3): requests' requote_uri keeps these.
# "~" is unreserved, but quote() before Python 3.7 encodes it unless it is named safe.
_PATH_SAFE = "!$&'()*+,/:;=?@[]~"
_PATH_CHARS = frozenset(_ALPHANUMERIC + "-._" + _PATH_SAFE)


# --------------------------------------------------------------------------- diagnostics

_LOGGER: "logging.Logger | None" = None  # the "xcc" logger, once logging is imported


def _log_enabled() -> bool:
    """Returns whether the ``xcc`` logger emits DEBUG now, without ``import logging`` (it costs
    milliseconds): a program that has not imported it has no handler to log to."""
    global _LOGGER
    if _LOGGER is None:  # looked for until the program imports logging, then never again
        logging = sys.modules.get("logging")
        if logging is None:
            return False
        logger = logging.getLogger("xcc")
        if not logger.handlers:
            logger.addHandler(logging.NullHandler())
        _LOGGER = logger
    return _LOGGER.isEnabledFor(10)  # logging.DEBUG


def _debug(message: str, *args: object) -> None:
    """Logs a DEBUG line on the ``xcc`` logger; its arguments never hold a secret (a URL that
    a server sent is masked where :func:`_send_once` reads it)."""
    if _log_enabled():
        assert _LOGGER is not None  # _log_enabled() made it
        _LOGGER.debug(message, *args)


# What a terminal or a log reader may act on: C0, DEL, C1 and the Unicode line and
# paragraph separators. A server's words are shown with these escaped, as ascii() would.
_UNPRINTABLE = {code: f"\\x{code:02x}" for code in list(range(32)) + list(range(127, 160))}
_UNPRINTABLE.update({0x2028: "\\u2028", 0x2029: "\\u2029"})


def _printable(text: str, limit: "int | None" = None) -> str:
    """Returns a server's ``text`` with its control characters escaped (``\\x1b``), cut to
    ``limit`` characters if given."""
    text = text.translate(_UNPRINTABLE)
    return text if limit is None or len(text) <= limit else text[:limit] + "..."


# ------------------------------------------------------- checking and encoding a request

if TYPE_CHECKING:
    _T = TypeVar("_T")


def _require(value: object, kind: "type[_T]", what: str) -> "_T":
    """Returns ``value`` if it is a ``kind``, else raises a TypeError naming its type, not it."""
    if not isinstance(value, kind):
        raise TypeError(f"{what}, not {type(value).__name__}")
    return value


def _check_token(name: str, token: object) -> "str | None":
    """Returns ``token`` if a header can carry it, ``None`` for ``None`` or ``""``; an error
    names it (``name``), never shows it. Any other text is the server's to judge."""
    if token is None or token == "":
        return None
    token = _require(token, str, f"The {name} must be a string")
    if not _CONTROL_CHARS.isdisjoint(token) or max(token) > "\xff":
        held = "a control character (such as CR, LF, NUL or a tab) or a character outside Latin-1"
        raise ValueError(f"The {name} cannot be sent in a header: it holds {held}")
    return token


def _check_method(method: object) -> str:
    """Returns the upper-cased HTTP method, refusing anything but an RFC 9110 token."""
    method = _require(method, str, "The method must be a string")
    if not method or not _TOKEN_CHARS.issuperset(method):
        raise ValueError(f"Invalid HTTP method {method!r}: a method is a token such as 'GET'")
    return method.upper()


def _check_headers(headers: "Any", allow_none: bool) -> "list[tuple[str, Any]]":
    """Returns the checked ``(name, value)`` pairs of a headers mapping, less Content-Length
    (counted from the body); with ``allow_none``, a ``None`` value removes that header."""
    if headers is None:
        return []
    if not hasattr(headers, "items"):
        raise TypeError(f"headers must be a mapping, not {type(headers).__name__}")
    checked: list[tuple[str, Any]] = []
    for name, value in headers.items():
        name = _require(name, str, "A header name must be a string")
        if not name or not _TOKEN_CHARS.issuperset(name):
            raise ValueError(f"Invalid header name {name!r}")
        if value is None and allow_none:
            checked.append((name, None))
            continue
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        value = _require(value, str, f"Header {name!r} must be a string or bytes")
        # A control character could start a new header or request (RFC 9110 §5.5); the
        # value is never shown: it may be a secret.
        if not _FIELD_CONTROL_CHARS.isdisjoint(value):
            raise ValueError(f"Header {name!r} holds a control character such as CR, LF or NUL")
        if value and max(value) > "\xff":
            raise ValueError(f"Header {name!r} holds a character outside Latin-1")
        if name.lower() == "transfer-encoding":
            raise ValueError("The Transfer-Encoding header is not supported: bodies are sent whole")
        if name.lower() != "content-length":
            checked.append((name, value.strip(" \t")))
    return checked


def _requote(path: str) -> str:
    """Percent-encodes what may not stand in a URL (space, non-ASCII, a stray ``%``), keeping
    valid ``%XX`` escapes: an encoded path is sent unchanged, as by requests' requote_uri."""
    if _PATH_CHARS.issuperset(path):
        return path
    from urllib.parse import quote

    first, *rest = path.split("%")
    escaped = (p if len(p) >= 2 and _HEX_DIGITS.issuperset(p[:2]) else "25" + p for p in rest)
    return quote("%".join([first, *escaped]), _PATH_SAFE + "%")  # a stray "%" as "%25"


def _encode_pairs(pairs: "_Pairs") -> str:
    """Form-encodes a mapping or a sequence of pairs as requests encodes ``params``: a ``None``
    value is left out, a list or tuple repeats the key (``{"id": ["a", "b"]}``: ``id=a&id=b``)."""
    from urllib.parse import urlencode

    flat: list[tuple[Any, Any]] = []
    for item in pairs.items() if hasattr(pairs, "items") else list(pairs):
        # A string or bytes of length two would unpack as a pair: b"ab" as 97=98.
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise TypeError(f"{type(item).__name__} is not a (key, value) pair")
        key, values = item
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
            values = (values,)
        flat.extend((_utf8(key), _utf8(value)) for value in values if value is not None)
    return urlencode(flat, safe="~")  # "~" as Python 3.7+ on 3.6 too


def _utf8(value: object) -> object:
    """Returns a string as its UTF-8 bytes, as requests sends it (urlencode would send str() of a
    str subclass: a str Enum member's name, not its value), anything else as it is."""
    return value.encode("utf-8") if isinstance(value, str) else value


def _encode_query(params: "str | bytes | _Pairs") -> str:
    """Returns the query string for a request's ``params`` (already encoded if a string)."""
    if isinstance(params, bytes):
        params = params.decode("utf-8")
    if isinstance(params, str):
        if not _CONTROL_CHARS.isdisjoint(params):
            raise ValueError("params holds a control character such as CR, LF or NUL")
        return _requote(params)
    try:
        return _encode_pairs(params)
    except (TypeError, ValueError) as exc:
        wanted = "a mapping or a sequence of (key, value) pairs"
        # Its type, not its value: it may hold an API key.
        raise TypeError(f"params must be {wanted}, not {type(params).__name__}") from exc


def _encode_body(data: "Any", json_body: "Any") -> "tuple[bytes | None, str | None]":
    """Returns ``(body, content_type)`` for ``data`` or ``json`` as requests does; a file is read
    whole, to send again after a 401 or a 307; an iterator is refused, not form-encoded."""
    if not data and json_body is not None:
        import json

        try:
            text = json.dumps(json_body, allow_nan=False)
        except ValueError as exc:
            raise ValueError(f"json is not valid JSON: {exc}") from exc
        except RecursionError as exc:
            raise ValueError("json is nested too deep to be serialised") from exc
        return text.encode("utf-8"), "application/json"
    if not data:
        return None, None
    if hasattr(data, "read"):
        data = data.read()
        if not isinstance(data, (str, bytes, bytearray)):
            raise TypeError(f"data.read() must return bytes or a string, not {type(data).__name__}")
    if isinstance(data, str):
        return data.encode("utf-8"), None
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data), None
    message = "data must be bytes, a string, a file, a mapping or a list of (key, value) pairs"
    if not (hasattr(data, "items") or isinstance(data, (list, tuple))):
        raise TypeError(f"{message}, not {type(data).__name__}")
    try:
        return _encode_pairs(data).encode("ascii"), "application/x-www-form-urlencoded"
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{message}, not {type(data).__name__} ({exc})") from exc


def _check_timeout(timeout: "Any") -> "_Timeouts":
    """Returns ``(connect, read)`` seconds from a requests-style ``timeout`` (``None``: forever)."""
    pair = timeout if isinstance(timeout, tuple) and len(timeout) == 2 else (timeout, timeout)
    for value in (seconds for seconds in pair if seconds is not None):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            wanted = "a positive number of seconds, a (connect, read) pair or None"
        elif value > _MAX_TIMEOUT:  # infinity too: None is how to wait forever
            wanted = f"at most {_MAX_TIMEOUT} seconds (about 24 days), or None to wait forever"
        else:
            continue
        raise ValueError(f"timeout must be {wanted}, not {timeout!r}")
    return pair


class _Options:
    """The settings of one :meth:`Connection.request` call, shared by each of its
    redirects and by the token refresh it may make; checked before anything is sent."""

    __slots__ = ("allow_redirects", "proxies", "secrets", "stream", "timeouts", "verify")

    def __init__(
        self, secrets: "list[Any]", timeout: "Any" = 10, verify: "Any" = True, proxies: "Any" = None
    ) -> None:
        self.timeouts = _check_timeout(timeout)
        try:
            self.verify = verify if isinstance(verify, (bool, str)) else os.fspath(verify)
        except TypeError as exc:
            wanted = "True, False or the path of a CA bundle"
            raise TypeError(f"verify must be {wanted}, not {verify!r}") from exc
        if proxies is not None and not hasattr(proxies, "get"):  # a list may hold a password
            kind = type(proxies).__name__
            raise TypeError(f"proxies must be a mapping such as {{'https': URL}}, not {kind}")
        self.proxies = proxies
        self.stream = self.allow_redirects = False  # a token request's; request() sets its own
        # What the request's errors and the URLs a server sends back (a Location may echo
        # one) mask: see _mask_error; each token sent and the proxy's credentials are added to it.
        self.secrets: list[str | None] = secrets


def _valid_host(host: str) -> bool:
    """Returns whether ``host`` is a host name or an IP address, with nothing to end a line."""
    if not host or not _HOST_CHARS.issuperset(host):
        return False
    return ":" not in host or _ip_network(host) is not None


def _netloc(host: str, port: int) -> str:
    """Returns ``host:port`` for a URL, with an IPv6 address in brackets (RFC 3986 §3.2.2)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _url(origin: "_Origin", target: str) -> str:
    """Returns the absolute URL of ``target`` (path and query) at ``origin``."""
    scheme, host, port = origin
    return f"{scheme}://{_netloc(host, port)}{target}"


def _split_url(url: str) -> "tuple[_Origin, str]":
    """Returns ``(origin, target)`` of an absolute http(s) URL, with the scheme's default port."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:  # urlsplit lower-cases a scheme
        raise ValueError(f"not an http or https URL: {url!r}")
    if parts.port == 0:  # "h:0" is not "h" (urlsplit gives 0 for it)
        raise ValueError(f"invalid port 0 in {url!r}")
    port = parts.port or _DEFAULT_PORTS[parts.scheme]
    host = parts.hostname.encode("idna").decode("ascii")  # a UnicodeError is a ValueError
    if not _valid_host(host):  # the idna codec lets spaces and control characters through
        raise ValueError(f"invalid host {host!r}")
    target = _requote(parts.path or "/") + ("?" + _requote(parts.query) if parts.query else "")
    return (parts.scheme, host, port), target


# -------------------------------------------------------------------- choosing the proxy


def _environ_proxies(
    environ: "Mapping[str, str]", schemes: "Iterable[str]"
) -> "dict[str, tuple[str, str]]":
    """Returns ``{scheme: (variable, proxy URL)}`` for ``schemes`` (``"no"`` for ``NO_PROXY``),
    read as ``urllib.request.getproxies_environment()`` reads them: lower case wins."""
    proxies = {}
    for scheme in schemes:  # only these: a request does not pay for a scan of the environment
        name = scheme + "_proxy"
        value = environ.get(name)
        # Under CGI, HTTP_PROXY may come from the client's Proxy: header (CVE-2016-1000110).
        if value is None and not (scheme == "http" and "REQUEST_METHOD" in environ):
            name = name.upper()
            value = environ.get(name)
        if value:  # an empty https_proxy unsets HTTPS_PROXY
            proxies[scheme] = name, value
    return proxies


def _ip_network(text: str) -> "ipaddress.IPv4Network | ipaddress.IPv6Network | None":
    """Returns the ``ipaddress`` network (a single address is a /32 or /128) of ``text``,
    or ``None`` if it is not an IP literal or CIDR range."""
    import ipaddress

    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


def _bypass_proxy(host: str, port: int, no_proxy: str) -> "str | None":
    """Returns the ``NO_PROXY`` entry that exempts ``host:port`` by curl's rules, on every Python
    (``*``, the host or a subdomain, never a mere suffix; ``:port``; IP ranges), or ``None``."""
    host = host.lower()
    address = _ip_network(host)  # no DNS look-up: a host name never matches an IP entry
    for entry in no_proxy.lower().split(","):
        entry = entry.strip()
        if entry == "*":
            return entry
        name, entry_port = entry, ""  # no port: a host, or a bare IPv6 address or range
        if entry.startswith("["):
            name, _, rest = entry[1:].partition("]")
            entry_port = rest[1:] if rest.startswith(":") else ""
        elif entry.count(":") == 1:
            name, _, entry_port = entry.partition(":")
        try:
            if not name or entry_port and int(entry_port) != port:
                continue
        except ValueError:
            continue  # an unreadable port: the entry matches nothing
        network = _ip_network(name)
        name = name[2:] if name.startswith("*.") else name.lstrip(".")
        if network is not None and address is not None:
            if address.network_address in network:  # False across IPv4 and IPv6
                return entry
        elif host == name or host.endswith("." + name):
            return entry
    return None


_BYPASSES: "dict[tuple[str, int, str], str]" = {}  # (host, port, NO_PROXY): entry or ""
_DIRECT = "direct: no proxy variable or setting"


def _system_proxy_url(settings: "Mapping[str, str]", scheme: str, windows: bool) -> "str | None":
    """Returns the proxy URL for ``scheme`` in ``settings`` (``urllib.request.getproxies()``),
    or ``None``; one without a scheme, and all of Windows', are HTTP proxies."""
    value = (settings.get(scheme) or "").strip()
    # Python 3.6 to 3.9 read the registry's proxy:3128 or https=proxy:3128 as
    # https://proxy:3128 (bpo-42627): the protocol carried, not the proxy's.
    if windows and value[:8].lower() == "https://":
        value = "http://" + value[8:]
    elif value and "://" not in value:
        value = "http://" + value
    return value or None


def _system_proxy(scheme: str, host: str) -> "tuple[str | None, str]":
    """Returns ``(url, reason)`` for ``host`` from the system's proxy settings (Windows', macOS's),
    read by ``urllib.request`` as requests reads them, with the hosts they exempt."""
    import urllib.request

    url = _system_proxy_url(urllib.request.getproxies(), scheme, sys.platform == "win32")
    if url is None:
        return None, _DIRECT
    if urllib.request.proxy_bypass(host):
        return None, "direct: the system settings exempt this host"
    return url, "from the system settings"


# Platform shim: Windows and macOS keep a system-wide proxy setting that requests honours
# when no proxy variable is set; elsewhere the environment is all there is, and neither
# urllib.request nor a look-up is paid for.
_SYSTEM_PROXY = _system_proxy if sys.platform in ("win32", "darwin") else None


def _proxy_url(
    origin: "_Origin",
    proxies: "Mapping[str, str | None] | None",
    environ: "Mapping[str, str]" = os.environ,
    system: "Callable[[str, str], tuple[str | None, str]] | None" = _SYSTEM_PROXY,
) -> "tuple[str | None, str]":
    """Returns ``(url, reason)``: the proxy for ``origin`` (``None``: direct) from ``proxies``, else
    the variables unless ``NO_PROXY`` exempts it, else ``system``; ``reason`` says which, or why."""
    scheme, host, port = origin
    if proxies:
        for key in (f"{scheme}://{host}", scheme, f"all://{host}", "all"):  # as requests
            if key in proxies:
                url = proxies[key] or None
                return url, ("" if url else "direct, ") + f"from proxies[{key!r}]"
    found = _environ_proxies(environ, (scheme, "all", "no"))
    if not found and system is not None:
        return system(scheme, host)
    name, url = found.get(scheme) or found.get("all") or ("", "")
    if not url:
        return None, _DIRECT
    no_proxy = found.get("no", ("", ""))[1]
    # NO_PROXY is matched once per host, not per request; it holds no password to keep.
    where = (host, port, no_proxy)
    entry = _cached(_BYPASSES, where, lambda: _bypass_proxy(*where) or "") if no_proxy else ""
    if entry:
        return None, f"direct: the NO_PROXY entry {entry!r} matches"
    return url, "from " + name


def _proxy_text(proxy: "_Proxy | None", reason: str) -> str:
    """Returns what the log says of the proxy chosen and of the ``reason`` that
    :func:`_proxy_url` gave: never the proxy's credentials."""
    if proxy is None:
        return reason
    return proxy.display + (" (with credentials), " if proxy.authorization else ", ") + reason


class _Proxy:
    """An ``http://`` proxy: where it listens, and the ``Proxy-Authorization`` for it; ``key``
    tells proxies apart in the pool, so that no socket, nor its responses, holds the password."""

    def __init__(self, url: str) -> None:
        from urllib.parse import clear_cache, unquote, urlsplit  # type: ignore[attr-defined]

        # Say nothing of a URL that does not parse, not even in a chained cause: it may
        # hold a password. An unencoded "#", "/" or "?" in the credentials ends the
        # authority early, so the "@" that closes them is left in what follows
        # ("http://user:pw#1@proxy" would make "pw" the port, "user" the host).
        try:
            parts = urlsplit(url if "://" in url else "http://" + url)
            if "@" in url:  # urllib.parse keeps the last URLs it split, password and all
                clear_cache()
            self.host, self.port = parts.hostname, parts.port or 80
            unreadable = "@" in parts.path + parts.query + parts.fragment
        except ValueError:
            unreadable = True
        if unreadable:
            form = "http://[user:password@]host[:port]"
            fix = "percent-encode any '#', '/', '?' or '@' in the user name or password"
            hidden = "it is not shown, as it may hold a password"
            raise ProxyError(f"Invalid proxy URL: it is not {form} ({fix}); {hidden}") from None
        self.display = display = f"{parts.scheme}://{_netloc(self.host or '', self.port)}"
        self.key = (display, object())  # one per proxy URL, as _proxy() caches them
        if parts.scheme != "http":  # lower-cased by urlsplit
            why = "the tunnel to the server is encrypted end to end through them"
            raise ProxyError(f"Proxy {display} is not supported: only http:// proxies are ({why})")
        if not self.host:
            raise ProxyError(f"Invalid proxy URL: no host in {display}")
        self.authorization = None
        if parts.username is not None:
            import base64

            credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            latin = max(credentials) <= "\xff"  # latin-1 as requests, else UTF-8
            raw = credentials.encode("latin-1" if latin else "utf-8")
            self.authorization = "Basic " + base64.b64encode(raw).decode("ascii")
        # The proxy, or the server it forwards them to, may echo them in any error.
        self.secrets = _credentials_in([("Proxy-Authorization", self.authorization)])


_PROXIES: "dict[str, _Proxy]" = {}


def _proxy(url: str) -> "_Proxy":
    """Returns the parsed :class:`_Proxy` for a proxy URL, kept for the last
    :data:`_MAX_CACHED` URLs: a dropped one takes its credentials with it."""
    return _cached(_PROXIES, url, lambda: _Proxy(url))


# ----------------------------------------------------------------------- the TLS context

_SSL_CONTEXTS: "dict[object, ssl.SSLContext]" = {}


def _ssl_context(verify: "_Verify") -> "tuple[_Verify, ssl.SSLContext]":
    """Returns ``(verify, context)``: the shared SSL context for a ``verify`` setting, and the
    setting that keys the pool (for ``True``, the path a CA-bundle variable names, if any)."""
    # A CA bundle costs milliseconds and a megabyte to load, so contexts are kept; one whose
    # file changed is loaded again, as requests does, so that a CA taken out is not trusted.
    verify, source = _ca_bundle(verify)
    if isinstance(verify, bool):
        key: object = (verify, os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
    else:
        try:
            state = os.stat(verify)
            key = (verify, state.st_size, state.st_mtime_ns, state.st_ino, state.st_dev)
        except OSError:
            key = verify  # _new_ssl_context says what is wrong with it
    return verify, _cached(_SSL_CONTEXTS, key, lambda: _new_ssl_context(verify, source))


def _cached(cache: "dict[Any, _T]", key: object, make: "Callable[[], _T]") -> "_T":
    """Returns ``cache[key]``, made by ``make()`` if missing, keeping the last :data:`_MAX_CACHED`
    keys used. No lock: each step is atomic under the GIL; two threads may both make a value."""
    value = cache.pop(key, None)  # and put back last: dicts keep their insertion order
    if value is None:
        value = make()
    cache[key] = value
    if len(cache) > _MAX_CACHED:
        for old in list(cache)[:-_MAX_CACHED]:  # the least recently used
            cache.pop(old, None)  # unless another thread took it out first
    return value


def _ca_bundle(verify: "_Verify") -> "tuple[_Verify, str]":
    """Returns ``(verify, source)``: ``verify`` with ``True`` replaced by the path in
    ``REQUESTS_CA_BUNDLE`` or ``CURL_CA_BUNDLE`` if one is set, and where that came from."""
    if verify is True:
        for name in _CA_BUNDLE_VARIABLES:
            if os.environ.get(name):
                return os.environ[name], name
    return verify, "verify"


def _ca_source(verify: "_Verify") -> str:
    """Returns what the log says of the CAs that a ``verify`` setting trusts, and why."""
    verify, source = _ca_bundle(verify)
    if verify is False:
        return "no CA: verify=False, the certificate is not checked"
    if verify is not True:
        return f"the CA bundle {verify!r}, from {source}"
    import ssl

    def found(kind: str, path: "str | None", variable: str) -> "list[str]":
        given = f" (from {variable})" if variable in os.environ else ""
        return [f"{kind} {path!r}{given}"] if path else []

    paths = ssl.get_default_verify_paths()
    chosen = found("file", paths.cafile, paths.openssl_cafile_env)
    chosen += found("directory", paths.capath, paths.openssl_capath_env)
    if sys.platform == "win32":
        chosen.append("the Windows certificate store")
    return "the system's CAs: " + (", ".join(chosen) or "none found")


def _new_ssl_context(verify: "_Verify", source: str) -> "ssl.SSLContext":
    """Builds the SSL context for :func:`_ssl_context`; ``source`` names where a path came from."""
    import ssl

    try:
        if isinstance(verify, bool):
            context = ssl.create_default_context()
        elif os.path.isdir(verify):
            context = ssl.create_default_context(capath=verify)
        elif os.path.isfile(verify):
            context = ssl.create_default_context(cafile=verify)
        else:
            raise ValueError(f"{source}={verify!r} is not a CA bundle file or directory")
    except OSError as exc:  # ssl.SSLError too: a file that is not a CA bundle
        raise SSLError(f"Cannot load the CA bundle {verify!r} from {source}: {exc}") from exc
    if verify is False:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    # Verify the chain and the host name, as Python 3.12 and curl do: Python 3.13 switched
    # on VERIFY_X509_STRICT, which refuses corporate inspection CAs whose basicConstraints
    # is not marked critical (requests 2.32 with urllib3 2.4+ refuses them there too).
    context.verify_flags &= ~ssl.VERIFY_X509_STRICT
    # Version shim: with OpenSSL 3, a server that closes without close_notify makes Python
    # 3.6 and 3.7 raise an SSLError where 3.8+ see the end of the stream (bpo-43794); treat
    # it as the end everywhere. The framing checks still catch a body cut short.
    if ssl.OPENSSL_VERSION_INFO >= (3,):
        context.options |= getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 1 << 7)
    return context


# ----------------------------------------------------------- the pool and the connection


class _StaleSocket(Exception):
    """A kept-alive socket was dead before the server sent a byte of the response."""


# Version shim: before Python 3.10, socket.timeout and the TimeoutError of a kernel
# ETIMEDOUT are two classes; both mean the same thing here.
_TIMEOUT_ERRORS = (socket.timeout, TimeoutError)


# Platform shim, chosen once: select.poll is missing on Windows, and select.select cannot watch
# a file descriptor above FD_SETSIZE (1024 on Linux), which a busy process may well hand out.
if hasattr(select, "poll"):

    def _readable(sock: "socket.socket") -> bool:
        """Returns whether ``sock`` has something to read (or was closed) right now."""
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))

else:

    def _readable(sock: "socket.socket") -> bool:
        """Returns whether ``sock`` has something to read (or was closed) right now."""
        return bool(select.select([sock], [], [], 0)[0])


def _socket_error(exc: BaseException, label: str, connecting: bool = False) -> "RequestException":
    """Returns the exception to raise for an error ``exc`` of the socket, TLS or codec
    layer while ``label`` was under way, so that no ``socket``, ``ssl`` or codec error ever
    reaches the caller."""
    if isinstance(exc, _TIMEOUT_ERRORS):
        return (ConnectTimeout if connecting else ReadTimeout)(f"{label} timed out")
    return ConnectionError(f"{label} failed: {exc}")


def _remaining(deadline: "float | None") -> "float | None":
    """Returns the seconds left before ``deadline`` (``None``: no limit)."""
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise socket.timeout("timed out")
    return left


class _Pool:
    """Idle kept-alive sockets per server and settings, for the whole process: thread-safe,
    bounded as urllib3's ``PoolManager`` (10 per server, 10 servers), and fork-safe (two
    processes writing to one TCP stream would interleave requests)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # key -> [(idle since, conn)], least recently used first
        self._idle: OrderedDict[_Key, list[tuple[float, _Socket]]] = OrderedDict()
        self._pid = os.getpid()
        self._next_sweep = 0.0

    def get(self, key: "_Key") -> "_Socket | None":
        """Returns an idle connection for ``key`` that is still open, or ``None``."""
        while True:
            with self._locked():
                idle = self._idle.get(key)
                if not idle:
                    return None
                since, conn = idle.pop()  # the most recently used: the least likely closed
            too_old = time.monotonic() - since >= _MAX_IDLE_SECONDS
            if not too_old and conn.alive():
                return conn
            if conn.holds_stray_bytes():
                conn.close()
                self.drop(key)
                continue
            why = "idle for too long" if too_old else "that the server closed while idle"
            _debug("Dropping a kept-alive connection %s", why)
            conn.close()

    def put(self, conn: "_Socket") -> None:
        """Keeps ``conn`` for reuse, or closes it if its server has enough idle sockets."""
        if conn.pid != os.getpid():  # opened by the parent process
            conn.close()
            return
        now = time.monotonic()
        dropped: list[_Socket] = []
        strays: list[tuple[_Key, list[_Socket]]] = []
        with self._locked():
            idle = self._idle.get(conn.key)
            new_server = idle is None
            if idle is None:
                idle = self._idle[conn.key] = []
                while len(self._idle) > _MAX_POOLS:
                    _, evicted = self._idle.popitem(last=False)
                    dropped.extend(old for _, old in evicted)
            else:
                self._idle.move_to_end(conn.key)
            if len(idle) < _MAX_IDLE_PER_SERVER:
                idle.append((now, conn))
            else:
                dropped.append(conn)
            # A process that goes from server to server (redirects do) checks the sockets
            # it keeps before it adds another server's, not only every few seconds.
            if new_server or now >= self._next_sweep:
                self._sweep(now, dropped, strays)
        for old in dropped:
            old.close()
        for key, conns in strays:
            self._close_stray(key, conns)

    def drop(self, key: "_Key") -> None:
        """Closes ``key``'s idle sockets after one received bytes nobody asked for."""
        with self._locked():
            conns = [conn for _, conn in self._idle.pop(key, [])]
        self._close_stray(key, conns)

    def close(self, origin: "_Origin") -> None:
        """Closes the idle connections to ``origin`` (any proxy, any TLS setting)."""
        with self._locked():
            keys = [key for key in self._idle if key[0] == origin]
            conns = [conn for key in keys for _, conn in self._idle.pop(key)]
        for conn in conns:
            conn.close()

    def _close_stray(self, key: "_Key", conns: "list[_Socket]") -> None:
        """Closes ``key``'s idle sockets, taken out after one held bytes nobody asked for: the
        others may hold such bytes too, not yet arrived, that would be read as the next request's
        answer. Not under the lock: a log handler may be slow, or send a request itself."""
        message = "Stray bytes after a response: closing the %d idle connections to %s"
        _debug(message, len(conns), _url(key[0], ""))
        for conn in conns:
            conn.close()

    def _sweep(
        self, now: float, dropped: "list[_Socket]", strays: "list[tuple[_Key, list[_Socket]]]"
    ) -> None:
        """Takes out the idle sockets of any server that idled too long or that their server closed
        (the caller holds the lock, and closes ``dropped``), so that none stays open until asked
        again; all of a server's, if one held stray bytes, go to ``strays``."""
        self._next_sweep = now + _SWEEP_SECONDS
        for key, idle in list(self._idle.items()):
            live = {
                conn for since, conn in idle if now - since < _MAX_IDLE_SECONDS and conn.alive()
            }
            gone = [conn for _, conn in idle if conn not in live]
            if any(conn.holds_stray_bytes() for conn in gone):
                strays.append((key, [conn for _, conn in self._idle.pop(key)]))
                continue
            dropped.extend(gone)
            if live:
                idle[:] = [(since, conn) for since, conn in idle if conn in live]
            else:  # a server with no idle socket left no longer counts towards _MAX_POOLS
                del self._idle[key]

    def _locked(self) -> "threading.Lock":
        """Returns the lock; first, in a child process, forgets the parent's sockets and lock."""
        if self._pid != os.getpid():
            # The parent's lock may have been held by another of its threads at the fork.
            # Closing the inherited sockets here only closes this process's descriptors.
            inherited, self._idle = self._idle, OrderedDict()
            self._lock = threading.Lock()
            self._pid = os.getpid()
            for conns in inherited.values():
                for _, conn in conns:
                    conn.close()
        return self._lock


_POOL = _Pool()


class _Socket:
    """One HTTP/1.1 connection to a server, direct or through a proxy's tunnel. It carries
    one request at a time and waits in the pool between requests."""

    def __init__(self, key: "_Key", sock: "socket.socket") -> None:
        self.key = key
        self.sock = sock
        self.rfile = io.BufferedReader(_SocketReader(sock))
        self.pid = os.getpid()

    @classmethod
    def open(
        cls,
        key: "_Key",
        proxy: "_Proxy | None",
        context: "ssl.SSLContext | None",
        options: "_Options",
        label: str,
    ) -> "_Socket":
        """Connects to ``key``'s server (through ``proxy``; TLS if ``context``) within the connect
        timeout; fails only with :class:`ConnectionError` or :class:`ConnectTimeout`."""
        (scheme, host, port), _, _ = key
        _debug("Starting new %s connection: %s", scheme.upper(), _netloc(host, port))
        if context is not None and _log_enabled():  # _ca_source reads the system's CA paths
            _debug("Verifying TLS with %s", _ca_source(options.verify))
        connect_timeout, read_timeout = options.timeouts
        deadline = None if connect_timeout is None else time.monotonic() + connect_timeout
        where = (host, port) if proxy is None else (proxy.host, proxy.port)
        try:
            addresses = socket.getaddrinfo(where[0], where[1], 0, socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:  # UnicodeError: not an IDNA name
            message = f"Failed to resolve hostname '{where[0]}'"
            if proxy is not None:
                raise ProxyError(f"Cannot connect to proxy {proxy.display}: {message}") from exc
            raise ConnectionError(message) from exc
        try:
            sock = _connect(addresses, deadline)
        except OSError as exc:
            if proxy is not None and not isinstance(exc, _TIMEOUT_ERRORS):
                raise ProxyError(f"Cannot connect to proxy {proxy.display}: {exc}") from exc
            raise _socket_error(exc, label, connecting=True) from exc
        try:
            if context is not None:
                if proxy is not None:
                    _tunnel(sock, host, port, proxy, deadline)
                # One timeout for the whole handshake: CPython's ssl module waits for it as a
                # deadline (bpo-23853), however slowly the server sends it.
                sock.settimeout(_remaining(deadline))
                sock = _wrap_tls(sock, host, context, label)
            sock.settimeout(read_timeout)
        except (OSError, ValueError) as exc:  # a RequestException is an OSError
            sock.close()
            if isinstance(exc, RequestException):
                raise
            raise _socket_error(exc, label, connecting=True) from exc
        return cls(key, sock)

    def alive(self) -> bool:
        """Returns whether an idle socket can carry a request (readable: closed, or stray bytes)."""
        try:
            return not _readable(self.sock)
        except (OSError, ValueError):
            return False

    def holds_stray_bytes(self) -> bool:
        """Returns whether a socket that :meth:`alive` refused holds bytes, not only a close."""
        try:
            self.sock.settimeout(0)
            return bool(self.rfile.peek(1))
        except (OSError, ValueError):  # a reset, or a TLS record not whole yet
            return False

    def close(self) -> None:
        """Closes the socket."""
        self.rfile.close()
        self.sock.close()


def _connect(addresses: "Iterable[tuple[Any, ...]]", deadline: "float | None") -> "socket.socket":
    """Opens a TCP connection to the first of ``addresses`` that accepts before ``deadline``:
    one budget for all, where ``socket.create_connection`` gives each the whole timeout."""
    error = OSError("the host name resolved to no address")
    for family, kind, protocol, _, address in addresses:
        sock = None
        try:
            sock = socket.socket(family, kind, protocol)  # fails if the family is not built in
            sock.settimeout(_remaining(deadline))
            sock.connect(address)
        except OSError as exc:
            if sock is not None:
                sock.close()
            error = exc
            continue
        # Headers and body go out in one write; Nagle's algorithm would only delay them.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    raise error


def _tunnel(
    sock: "socket.socket", host: str, port: int, proxy: "_Proxy", deadline: "float | None"
) -> None:
    """Asks ``proxy`` for a tunnel to ``host:port`` (RFC 9110 §9.3.6); its password goes on the
    CONNECT only, never to the server at the end of the tunnel."""
    authority = _netloc(host, port)
    lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
    if proxy.authorization:
        lines.append(f"Proxy-Authorization: {proxy.authorization}")
    sock.settimeout(_remaining(deadline))
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("ascii"))
    label = f"CONNECT to {authority} through proxy {proxy.display}"
    with io.BufferedReader(_SocketReader(sock, deadline)) as rfile:
        try:
            _, status, reason, _ = _read_head(rfile, label, proxy.secrets)
        except _StaleSocket as exc:
            raise ProxyError(f"Proxy {proxy.display} closed the connection on {label}") from exc
        except ConnectionError as exc:  # its line may echo the credentials: see _send_once
            raise ProxyError(str(exc)) from exc
    if not 200 <= status < 300:
        answer = f"{status} {_printable(reason)}"
        raise ProxyError(f"Proxy {proxy.display} refused the tunnel to {authority}: {answer}")


def _wrap_tls(
    sock: "socket.socket", host: str, context: "ssl.SSLContext", label: str
) -> "ssl.SSLSocket":
    """Returns ``sock`` wrapped in TLS for ``host``, verified by ``context``, within the timeout
    that ``sock`` has."""
    import ssl

    try:
        sock = context.wrap_socket(sock, server_hostname=host)
    except (ssl.SSLError, ssl.CertificateError) as exc:
        # Python 3.6 raises CertificateError for a wrong host name, after the handshake.
        if "CERTIFICATE_VERIFY_FAILED" in str(exc) or isinstance(exc, ssl.CertificateError):
            raise _verification_error(exc, host, label) from exc
        raise SSLError(f"{label} failed: TLS with {host!r} failed ({exc})") from exc
    if _log_enabled():
        certificate: dict[str, Any] | None = sock.getpeercert()
        if certificate:
            subject, issuer = (_distinguished_name(certificate[n]) for n in ("subject", "issuer"))
            expiry = _utc(ssl.cert_time_to_seconds(certificate["notAfter"]))
            seen = f"certificate of {subject}, issued by {issuer}, valid until {expiry}"
        else:  # the ssl module decodes only a certificate that it verified
            seen = "certificate not verified (verify=False)"
        _debug("%s with %r: %s", sock.version(), host, seen)
    return sock


def _utc(seconds: "float | None") -> str:
    """Returns Unix ``seconds`` as a UTC time for a message (``None``: an unknown time)."""
    if seconds is not None:
        try:
            return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(seconds))
        except (OverflowError, ValueError, OSError):  # out of this platform's range
            pass
    return "an unknown time"


# The attributes of a distinguished name that a log line shows (RFC 5280 §4.1.2.4).
_NAME_ATTRIBUTES = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU"}
_MAX_SHOWN_CHARS = 200  # characters of a certificate's text that a message or log line shows


def _distinguished_name(name: "tuple[tuple[tuple[str, str], ...], ...]") -> str:
    """Returns a distinguished name from ``getpeercert()`` as ``CN=..., O=...``, escaped."""
    shown = [(key, value) for rdn in name for key, value in rdn if key in _NAME_ATTRIBUTES]
    text = ", ".join(f"{_NAME_ATTRIBUTES[key]}={value}" for key, value in shown)
    return _printable(text, _MAX_SHOWN_CHARS)


def _verification_error(exc: Exception, host: str, label: str) -> "SSLError":
    """Returns the :class:`SSLError` for a certificate that did not verify, with the advice
    for its cause (OpenSSL's code on 3.7+; on 3.6, what it may be): CA, clock, or none."""
    import ssl

    code = getattr(exc, "verify_code", None)
    cause = str(exc)
    # Version shim: from 3.7, CertificateError is SSLCertVerificationError, which carries
    # the code; 3.6 raises it, without one, only for a wrong name, and lists the names
    # that the certificate holds: the server's words, escaped and cut.
    if code is None and isinstance(exc, ssl.CertificateError):
        code, cause = _HOSTNAME_MISMATCH, _printable(cause, _MAX_SHOWN_CHARS)
    failed = f"{label} failed: the TLS certificate of {host!r} did not verify ({cause})"
    if code in _NAME_MISMATCH:
        return SSLError(failed)
    clock = f"this machine's clock says {_utc(time.time())}"
    if code in (_EXPIRED, _NOT_YET_VALID):
        return SSLError(f"{failed}; {clock}")
    if code is None:  # Python 3.6: any of the causes
        failed += ": its issuer may not be trusted here, or it has expired or is not valid yet"
        failed += f" ({clock})"
    # An unknown issuer or a self-signed certificate (codes 2, 18-21), or a cause not named
    # above: the advice that was always given.
    return SSLError(f"{failed}; {_CA_ADVICE.format(_VERIFY_ADVICE)}")


# --------------------------------------------- writing the request, reading the response


# A request in flight; each redirect makes another.
_Request = namedtuple("_Request", "method origin target headers body")


def _send_once(request: "_Request", options: "_Options") -> "Response":
    """Sends one request over a pooled or a new socket and returns its :class:`Response`; a
    pooled socket found dead sends it again on a new one, but never a POST or PATCH twice."""
    method, origin, target, _, _ = request
    proxy_url, proxy_source = _proxy_url(origin, options.proxies)
    proxy = _proxy(proxy_url) if proxy_url else None
    if proxy is not None and proxy.secrets and proxy.secrets[0] not in options.secrets:
        options.secrets += proxy.secrets  # the public method masks its errors with them
    # A redirect's Location may hold a token the server echoed: the URL that the response,
    # the label of its errors (a streamed body's, after request() returned) and the log
    # show is masked here, once.
    shown_target = _masked(target, options.secrets)
    url = _url(origin, shown_target)
    label = f"{method} request to '{url}'"
    verify, context = _ssl_context(options.verify) if origin[0] == "https" else (None, None)
    key = (origin, None if proxy is None else proxy.key, verify)
    head = _serialize(request, proxy)
    logging_on = _log_enabled()
    started = time.monotonic()  # for the log only
    if logging_on:
        _debug("Proxy for %s: %s", url, _proxy_text(proxy, proxy_source))
    conn = _POOL.get(key)
    reused = conn is not None
    while True:
        if conn is None:
            try:
                conn = _Socket.open(key, proxy, context, options, label)
            except ProxyError as exc:  # the proxy may come from a variable the user forgot
                exc.args = (f"{exc} (the proxy {proxy_source})",)
                raise
        elif logging_on:
            _debug("Reusing a kept-alive connection for %s", label)
        try:
            response = _roundtrip(conn, request, head, url, label, options)
            break
        except _StaleSocket as exc:
            conn.close()
            if not reused:
                raise ConnectionError(f"{label} failed: {exc}") from exc
            again = "sent again on a new one" if method in _IDEMPOTENT_METHODS else "not sent twice"
            _debug("The kept-alive connection was dead (%s): %s is %s", exc, label, again)
            if method not in _IDEMPOTENT_METHODS:
                twice = f"on a kept-alive connection; a {method} request is not sent twice"
                raise ConnectionError(f"{label} failed: {exc} ({twice})") from exc
            conn, reused = None, False
    if logging_on:
        _debug("%s", _response_text(origin, f"{method} {shown_target} HTTP/1.1", response, started))
    if proxy is not None and response.status_code == 407:  # a forwarding proxy's own answer
        response._discard()
        reason = _printable(response.reason)
        message = f"Proxy {proxy.display} refused {label}: 407 {reason} (the proxy {proxy_source})"
        raise ProxyError(message, response=response)
    return response


def _serialize(request: "_Request", proxy: "_Proxy | None") -> bytes:
    """Returns the bytes of a request head (RFC 9112 §3), ``Content-Length`` counted here."""
    method, origin, target, headers, body = request
    scheme, host, port = origin
    forwarding = proxy if scheme == "http" else None  # the proxy that reads the request
    if forwarding is not None:
        target = _url(origin, target)  # absolute form, for the proxy (RFC 9112 §3.2.2)
        if forwarding.authorization and "Proxy-Authorization" in headers:
            # One Proxy-Authorization (RFC 9110 §11.7.1): the proxy URL's wins, as in requests.
            headers = headers.copy()
            del headers["Proxy-Authorization"]
    lines = [f"{method} {target} HTTP/1.1"]
    if "Host" not in headers:
        authority = _netloc(host, port)
        if port == _DEFAULT_PORTS[scheme]:  # left out, as browsers and requests send it
            authority = authority.rsplit(":", 1)[0]
        lines.append("Host: " + authority)
    lines.extend(f"{name}: {value}" for name, value in headers._fields.values())
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    elif method not in ("GET", "HEAD"):
        lines.append("Content-Length: 0")
    if forwarding is not None and forwarding.authorization:
        lines.append(f"Proxy-Authorization: {forwarding.authorization}")
    lines.append("\r\n")
    return "\r\n".join(lines).encode("latin-1")


def _roundtrip(
    conn: "_Socket", request: "_Request", head: bytes, url: str, label: str, options: "_Options"
) -> "Response":
    """Sends a request on ``conn`` and returns its :class:`Response` (read whole unless
    ``options.stream``); :class:`_StaleSocket` if it failed before a byte came back."""
    method, body = request.method, request.body
    sent = True
    try:
        # A pooled socket still has the read timeout of the request that opened it; setting
        # it costs a system call, so only when it differs.
        if conn.sock.gettimeout() != options.timeouts[1]:
            conn.sock.settimeout(options.timeouts[1])
        # Only a failure before the first byte of the response is a stale socket's: once the
        # server started answering, it acted on the request, which is never sent again.
        try:
            try:
                if body is not None and len(body) > 65536:
                    conn.sock.sendall(head)
                    conn.sock.sendall(body)
                else:
                    conn.sock.sendall(head + (body or b""))
            except OSError:
                # A server may answer before it has read the whole body (a 413, or a 401 to
                # a large upload) and close the connection (RFC 9112 §9.5): its answer is
                # then waiting to be read. A socket with nothing to read just died.
                if conn.alive():
                    raise
                sent = False
            conn.rfile.peek(1)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError) as exc:
            raise _StaleSocket(str(exc)) from exc
        version, status, reason, headers = _read_head(conn.rfile, label, options.secrets)
        length, chunked, keep_alive = _framing(method, version, status, headers, label)
    except RequestException:  # not a _StaleSocket, which _send_once closes and handles
        conn.close()
        raise
    except (OSError, ValueError) as exc:
        conn.close()
        raise _socket_error(exc, label) from exc
    reader = _Body(conn, label, length, chunked, keep_alive and sent)
    response = Response(status, reason, headers, url, reader)
    if not options.stream:
        response.content  # noqa: B018 (reads the body now, so the socket goes back to the pool)
    return response


def _read_head(
    rfile: "io.BufferedReader[Any]", label: str, secrets: "Sequence[str | None]"
) -> "tuple[bytes, int, str, _Headers]":
    """Reads a response's head after any interim ones: ``(version, status, reason, headers)``
    (RFC 9112 §4-§5). It refuses what a strict parser refuses: a field that an intermediary
    may read differently is how responses get smuggled. :class:`_StaleSocket` if no byte came."""
    status = 0
    for _ in range(_MAX_INTERIM + 1):
        # Most heads arrive whole: what is buffered is split at once (a quarter faster for
        # nginx's) where _read_fields' loop would read the same lines (CRLF only, in bounds).
        data = rfile.peek(1)
        end = data.find(b"\r\n\r\n", 0, _MAX_HEAD)
        if end >= 0 and data.count(b"\n", 0, end) == data.count(b"\r\n", 0, end) <= _MAX_HEADERS:
            texts = rfile.read(end + 4)[:end].split(b"\r\n")
            version, status, raw_reason = _status_line(texts[0], label, secrets)
        else:
            line = rfile.readline(_MAX_HEAD + 1)
            if not line:
                closed = "the server closed the connection without a response"
                if status:  # not stale: the server did answer, with an interim response
                    raise ConnectionError(f"{label} failed: {closed} after a {status}")
                raise _StaleSocket(closed)
            version, status, raw_reason = _status_line(line.rstrip(b"\r\n"), label, secrets)
            texts = _read_fields(rfile, [line], label)
        _check_controls(texts, label, secrets)
        fields: list[list[Any]] = []  # [name, value pieces]: a folded value is joined once
        for text in texts[1:]:  # an interim head's too: a strict parser refuses it alike
            name, colon, rest = text.partition(b":")
            if text[0] in b" \t" and fields:  # obsolete line folding (RFC 9112 §5.2)
                fields[-1][1].append(text.strip().decode("latin-1"))
            elif colon and name and not name.translate(None, _TOKEN_BYTES):
                fields.append([name.decode("latin-1"), [rest.strip().decode("latin-1")]])
            else:
                shown = _excerpt(text, 40, secrets)
                raise ConnectionError(f"{label} failed: invalid header line {shown!r}")
        if not 100 <= status < 200 or status == 101:
            break
    else:
        raise ConnectionError(f"{label} failed: more than {_MAX_INTERIM} interim responses")
    headers = _Headers()
    combined = headers._fields  # filled here: through __setitem__, 4 % of a request
    for name, pieces in fields:
        key, value = name.lower(), " ".join(pieces)
        if key in combined:  # a repeated field is one list (RFC 9110 §5.3)
            value = combined[key][1] + ", " + value
        combined[key] = (name, value)
    try:
        reason = raw_reason.strip().decode("utf-8")
    except UnicodeDecodeError:
        reason = raw_reason.strip().decode("latin-1")
    return version, status, reason, headers


def _status_line(
    line: bytes, label: str, secrets: "Sequence[str | None]"
) -> "tuple[bytes, int, bytes]":
    """Returns ``(version, status, reason)`` of a status line without its line end."""
    # HTTP-version SP status-code SP [reason-phrase] (RFC 9112 §4): single spaces, as h11 and
    # llhttp read it; a tab or a second space is not a status line.
    version, _, rest = line.partition(b" ")
    code, _, reason = rest.partition(b" ")
    if version not in (b"HTTP/1.1", b"HTTP/1.0"):
        shown = _excerpt(line, 40, secrets)
        raise ConnectionError(f"{label} failed: the answer is not HTTP/1.x: {shown!r}")
    if len(code) != 3 or not code.isdigit() or not b"100" <= code <= b"599":  # RFC 9110 §15
        shown = _excerpt(line, 80, secrets)
        raise ConnectionError(f"{label} failed: invalid status line {shown!r}")
    return version, int(code), reason


def _read_fields(rfile: "IO[bytes]", lines: "list[bytes]", label: str) -> "list[bytes]":
    """Reads field lines to the empty one within a head's bounds (``lines`` count) and returns
    all without line ends, for :func:`_check_controls`."""
    left = _MAX_HEAD - sum(map(len, lines))
    for _ in range(_MAX_HEADERS + 1):
        line = rfile.readline(left + 1)
        left -= len(line)
        if line in (b"\r\n", b"\n") and left >= 0:
            break
        if left < 0 or not line.endswith(b"\n"):
            problem = f"larger than {_MAX_HEAD} bytes" if left < 0 else "cut short"
            raise ConnectionError(f"{label} failed: the response head is {problem}")
        lines.append(line)
    else:
        raise ConnectionError(f"{label} failed: the response head has over {_MAX_HEADERS} lines")
    return [line[:-2] if line.endswith(b"\r\n") else line[:-1] for line in lines]


def _check_controls(texts: "list[bytes]", label: str, secrets: "Sequence[str | None]") -> None:
    """Refuses a control character but a tab in a head's or trailers' lines (CR, NUL: RFC 9110
    §5.5), all at once in C (a check of each line costs a request 8 %)."""
    joined = b"".join(texts)
    if len(joined.translate(None, _FIELD_CONTROL_BYTES)) < len(joined):
        bad = next(t for t in texts if len(t.translate(None, _FIELD_CONTROL_BYTES)) < len(t))
        raise ConnectionError(f"{label} failed: invalid header line {_excerpt(bad, 40, secrets)!r}")


def _excerpt(line: bytes, size: int, secrets: "Sequence[str | None]") -> bytes:
    """Returns the first ``size`` bytes of a server's ``line`` for a message, its ``secrets``
    masked first: cut, an echoed secret would no longer match, and its start would show."""
    tokens = [secret.encode("utf-8").decode("latin-1") for secret in secrets if secret]
    return _masked(line.decode("latin-1"), tokens)[:size].encode("latin-1")


def _framing(
    method: str, version: bytes, status: int, headers: "_Headers", label: str
) -> "tuple[int | None, bool, bool]":
    """Returns ``(length, chunked, keep_alive)`` of a body (RFC 9112 §6.3); ``length`` is
    ``None`` if it is chunked or ends with the connection."""
    tokens = {token.strip().lower() for token in headers.get("Connection", "").split(",")}
    keep_alive = "close" not in tokens if version == b"HTTP/1.1" else "keep-alive" in tokens
    # After a 101 the socket speaks another protocol, which nobody asked for. A HEAD, 204 or 304
    # has no body, but a server that miscounts writes one anyway, maybe a few milliseconds
    # later, when no check before reuse can see it yet: it would be read as the next request's
    # answer. The Xanadu Cloud answers neither, so their socket is not worth keeping.
    if status == 101 or method == "HEAD" or status in (204, 304):
        return 0, False, False
    coding = headers.get("Transfer-Encoding")
    if coding is not None:
        # Chunked is the only transfer coding read, as h11 reads: a body under another one
        # (gzip, chunked) would be handed over still encoded, as if it were whole.
        if coding.strip().lower() != "chunked":
            raise ConnectionError(f"{label} failed: unsupported Transfer-Encoding {coding!r}")
        # A Content-Length beside Transfer-Encoding is how requests get smuggled, and an
        # HTTP/1.0 peer may not know chunked (RFC 9112 §6.1): read this body, but do not
        # trust the socket afterwards.
        reusable = version == b"HTTP/1.1" and "Content-Length" not in headers
        return None, True, keep_alive and reusable
    announced = headers.get("Content-Length")
    if announced is None:
        return None, False, False
    # An empty value is refused, as h11 does (http.client would read to the close).
    values = {value.strip() for value in announced.split(",")}
    length = values.pop()
    if values or not length or not _DIGITS.issuperset(length):
        raise ConnectionError(f"{label} failed: invalid Content-Length {announced!r}")
    return int(length), False, keep_alive


class _Headers(_HeadersBase):
    """HTTP header fields: a dict whose keys compare case-insensitively, as requests'
    ``CaseInsensitiveDict``; iteration gives each name in the case it was last set with."""

    def __init__(self, fields: "Iterable[tuple[str, str]]" = ()) -> None:
        self._fields: dict[str, tuple[str, str]] = {}
        self.update(fields)

    def __setitem__(self, name: str, value: str) -> None:
        self._fields[name.lower()] = (name, value)

    def __getitem__(self, name: str) -> str:
        return self._fields[name.lower()][1]

    def __delitem__(self, name: str) -> None:
        del self._fields[name.lower()]

    def __iter__(self) -> "Iterator[str]":
        return (name for name, _ in self._fields.values())

    def __len__(self) -> int:
        return len(self._fields)

    def __contains__(self, name: "Any") -> bool:  # faster than Mapping's: no KeyError
        return name.lower() in self._fields

    def get(self, name: str, default: "Any" = None) -> "Any":
        """Returns the value of header ``name``, or ``default``."""
        field = self._fields.get(name.lower())
        return default if field is None else field[1]

    def __repr__(self) -> str:
        return repr(dict(self.items()))

    def copy(self) -> "_Headers":
        """Returns a shallow copy."""
        headers = _Headers()
        headers._fields = self._fields.copy()
        return headers


class _SocketReader(io.RawIOBase):
    """The socket under a connection's read buffer. While ``probing``, a read returns only bytes
    already there (or that OpenSSL holds), so ``peek()`` tells at once if more came."""

    probing = False

    def __init__(self, sock: "socket.socket", deadline: "float | None" = None) -> None:
        io.RawIOBase.__init__(self)
        self._sock = sock
        self._tls = hasattr(sock, "pending")  # an ssl.SSLSocket
        # A proxy's CONNECT answer is read within the connect timeout as a whole: each read
        # waits only for what is left of it, so that a proxy dripping bytes cannot stretch it.
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: "Any") -> "int | None":
        """Receives into ``buffer``; returns the byte count, or ``None`` for nothing yet."""
        # pending() is an ssl.SSLSocket's, called only if self._tls.
        if self.probing and not (self._tls and self._sock.pending()):  # type: ignore[attr-defined]
            return None
        if self._deadline is not None:
            self._sock.settimeout(_remaining(self._deadline))
        return self._sock.recv_into(buffer)


def _read_beyond(conn: "_Socket") -> bool:
    """Returns whether bytes beyond the response wait in ``conn``'s buffer or TLS layer (bytes
    in the kernel are seen by :meth:`_Socket.alive` before reuse)."""
    raw = conn.rfile.raw
    raw.probing = True
    try:
        return bool(conn.rfile.peek(1))
    except (OSError, ValueError):  # a TLS error while reading what OpenSSL holds
        return True
    finally:
        raw.probing = False


def _read_exactly(rfile: "IO[bytes]", size: int) -> bytes:
    """Returns ``size`` bytes, fewer only at the end, in reads of at most 1 MiB: an announced
    terabyte is never allocated up front."""
    if size <= _MAX_READ:
        return rfile.read(size)
    pieces = []
    while size > 0:
        piece = rfile.read(min(size, _MAX_READ))
        if not piece:
            break
        pieces.append(piece)
        size -= len(piece)
    return b"".join(pieces)


class _Body:
    """Reads one body as it is framed (RFC 9112 §6-§7), then pools or closes its socket; a body
    cut short is a :class:`ConnectionError`, never passed off as whole."""

    def __init__(
        self, conn: "_Socket", label: str, length: "int | None", chunked: bool, keep_alive: bool
    ) -> None:
        self.label = label
        self.done = False
        self._conn = conn
        self._unread = 0 if chunked else length  # of the body, or of the current chunk
        self._chunked = chunked
        self._keep_alive = keep_alive
        if length == 0:
            self._finish()

    def read(self, amount: "int | None" = None) -> bytes:
        """Returns up to ``amount`` bytes of the body (within a chunk), all the rest if ``None``."""
        if self.done:
            return b""
        try:
            return self._read_chunked(amount) if self._chunked else self._read_plain(amount)
        except RequestException:
            self.close()
            raise
        except (OSError, ValueError) as exc:
            self.close()
            raise _socket_error(exc, self.label) from exc

    def drain(self, limit: int) -> None:
        """Reads and drops up to ``limit`` bytes, then closes the socket if the body goes on."""
        while not self.done and limit > 0:
            limit -= len(self.read(min(limit, 16384)))
        self.close()

    def close(self) -> None:
        """Closes the socket unless the body was read to its end."""
        if not self.done:
            self.done = True
            self._conn.close()

    def _finish(self) -> None:
        """Ends the body and pools the socket only if nothing came beyond it: those bytes would be
        the next request's answer (a server counting characters, a body on a 204, an attack)."""
        self.done = True
        if not self._keep_alive:
            self._conn.close()
        elif _read_beyond(self._conn):
            self._conn.close()
            _POOL.drop(self._conn.key)
        else:
            _POOL.put(self._conn)

    def _read_plain(self, amount: "int | None") -> bytes:
        """Reads a body framed by ``Content-Length``, or by the end of the connection."""
        rfile = self._conn.rfile
        if self._unread is None:  # the body ends when the server closes (RFC 9112 §6.3 rule 8)
            data = rfile.read() if amount is None else _read_exactly(rfile, amount)
            if amount is None or not data:
                self._finish()
            return data
        wanted = self._unread if amount is None else min(amount, self._unread)
        data = _read_exactly(rfile, wanted)
        self._unread -= len(data)
        if len(data) < wanted:
            closed = f"the server closed the connection {self._unread} bytes before the end"
            raise ConnectionError(f"{self.label} failed: {closed} of the body")
        if not self._unread:
            self._finish()
        return data

    def _read_chunked(self, amount: "int | None") -> bytes:
        """Reads a chunked body (RFC 9112 §7.1); with an ``amount``, at most the chunk's rest, so a
        stream yields each chunk as it arrives."""
        rfile = self._conn.rfile
        pieces: list[bytes] = []
        while True:
            if not self._unread:
                line = rfile.readline(_MAX_LINE + 1)
                # Hex digits, then spaces or tabs and an extension (RFC 9112 §7.1.1); no
                # control character, no space before the digits, as h11 reads it.
                text = line[:-2] if line.endswith(b"\r\n") else line[:-1]
                size = text.partition(b";")[0].rstrip(b" \t").decode("latin-1")
                hexadecimal = 0 < len(size) <= 16 and _HEX_DIGITS.issuperset(size)
                controls = len(text.translate(None, _FIELD_CONTROL_BYTES)) < len(text)
                if not line.endswith(b"\n") or not hexadecimal or controls:
                    raise self._broken_chunk()
                self._unread = int(size, 16)
                if not self._unread:
                    try:  # the trailer fields, which nothing uses, read as a head's
                        _check_controls(_read_fields(rfile, [], self.label), self.label, ())
                    except ConnectionError as exc:
                        raise self._broken_chunk() from exc
                    self._finish()
                    return b"".join(pieces)
            wanted = self._unread if amount is None else min(amount, self._unread)
            data = _read_exactly(rfile, wanted)
            if len(data) < wanted:
                raise self._broken_chunk()
            pieces.append(data)
            self._unread -= wanted
            if not self._unread and rfile.readline(_MAX_LINE + 1) not in (b"\r\n", b"\n"):
                raise self._broken_chunk()
            if amount is not None:
                return b"".join(pieces)

    def _broken_chunk(self) -> "ConnectionError":
        return ConnectionError(f"{self.label} failed: the chunked body was cut short or broken")


class _Decoder:
    """Decodes ``gzip`` or ``deflate`` as it arrives, in pieces no larger than asked for (a bomb
    streams in flat memory, cf. CVE-2025-66471); a stream cut short or with trailing data but
    another gzip member or zero padding (as ``gzip.decompress``) is a :class:`ConnectionError`."""

    def __init__(self, coding: str, label: str) -> None:
        import zlib

        self._zlib = zlib
        self._coding = coding
        self._label = label
        self._pending = b""  # the first bytes of a deflate stream, until its format is known
        self._decompressor = None

    def decode(self, pieces: "Iterable[bytes]", size: "int | None") -> "Iterator[bytes]":
        """Yields the decoded bytes of the body's ``pieces`` in pieces of at most ``size``
        bytes (``None``: as they come), then checks that the stream ended."""
        limit = size or 0  # zlib's max_length; 0: no limit
        for data in pieces:
            more = True
            while more:
                decompressor = self._decompressor
                if decompressor is None or decompressor.eof:
                    decompressor, data = self._start(data)
                    if decompressor is None:
                        break
                try:
                    piece = decompressor.decompress(data, limit)
                except self._zlib.error as exc:
                    raise self._corrupt(exc) from exc
                if piece:
                    yield piece
                if decompressor.eof:
                    data = decompressor.unused_data  # the next gzip member, if any
                    more = bool(data)
                else:
                    # At the limit, zlib may hold more output of the input it took.
                    data = decompressor.unconsumed_tail
                    more = bool(data) or bool(limit) and len(piece) == limit
        if self._pending or self._decompressor is not None and not self._decompressor.eof:
            raise ConnectionError(f"{self._label} failed: the {self._coding} body was cut short")

    def _start(self, data: bytes) -> "tuple[zlib._Decompress | None, bytes]":
        """Returns a decompressor for the stream (or gzip member) that begins with ``data``,
        and the bytes to give it; ``(None, b"")`` until two bytes of a deflate body came."""
        zlib = self._zlib
        if self._coding == "gzip":
            if self._decompressor is not None:  # after a member, as gzip.decompress
                data = data.lstrip(b"\0")
                if not data:
                    return None, b""
            wbits = zlib.MAX_WBITS | 16
        else:
            if self._decompressor is not None:
                raise self._corrupt("data after the end of the stream")
            data, self._pending = self._pending + data, b""
            if len(data) < 2:
                self._pending = data
                return None, b""
            # Some servers send raw deflate (RFC 1951) where RFC 9110 means the zlib format
            # (RFC 1950); tell them apart by the zlib header check (RFC 1950 §2.2), as urllib3
            # accepts both.
            is_zlib = data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
            wbits = zlib.MAX_WBITS if is_zlib else -zlib.MAX_WBITS
        self._decompressor = zlib.decompressobj(wbits)
        return self._decompressor, data

    def _corrupt(self, cause: object) -> "ConnectionError":
        return ConnectionError(f"{self._label} failed: corrupt {self._coding} body ({cause})")


def _response_text(origin: "_Origin", request_line: str, response: "Response", start: float) -> str:
    """Returns a response's log line, worded as urllib3's, with size and milliseconds."""
    if response._content is not None:
        size = f"{len(response._content)} bytes"
    else:
        size = "streamed, Content-Length " + response.headers.get("Content-Length", "not given")
    elapsed = (time.monotonic() - start) * 1000
    return f'{_url(origin, "")} "{request_line}" {response.status_code} {size} {elapsed:.0f} ms'


# ----------------------------------------------------------------------------- redirects


def _send_following_redirects(request: "_Request", options: "_Options") -> "Response":
    """Sends a request and follows its redirects as requests does (RFC 9110 §15.4): up to 30,
    credentials dropped for good once one leaves the origin; returns the last response."""
    credentials_sent = True
    for _ in range(_MAX_REDIRECTS + 1):
        response = _send_once(request, options)
        method, origin, target, headers, body = request
        response._credentials_sent = credentials_sent
        status = response.status_code
        location = response.headers.get("Location")
        if not (options.allow_redirects and status in (301, 302, 303, 307, 308) and location):
            return response
        response._discard()
        from urllib.parse import urljoin

        try:  # servers send UTF-8 in a header that HTTP reads as Latin-1 (RFC 9110 §5.5)
            location = location.encode("latin-1").decode("utf-8")
        except UnicodeError:
            pass
        try:  # response.url is masked: the real URL is the base
            next_origin, target = _split_url(urljoin(_url(origin, target), location))
            if any(secret.lower() in next_origin[1] for secret in options.secrets if secret):
                # Resolving such a host would send the credential to the DNS servers on the way.
                raise ValueError("its host holds a credential of this request (it is not resolved)")
        except ValueError as exc:
            message = f"Cannot follow the redirect from '{response.url}' to {location!r}: {exc}"
            raise RequestException(message, response=response) from exc
        if _log_enabled():
            _debug("%s redirect to %s", status, _url(next_origin, _masked(target, options.secrets)))
        headers = headers.copy()
        if credentials_sent and _should_strip_auth(origin, next_origin):
            _debug("Credentials dropped: the redirect leaves %s", _url(origin, ""))
            credentials_sent = False
            # What must not follow a redirect to another origin (RFC 9110 §15.4): credentials, Host
            for name in ("Authorization", "Proxy-Authorization", "Cookie", "Host"):
                headers.pop(name, None)
        # requests' rules (RFC 9110 §15.4): 302 and 303 turn any method but HEAD into GET, 301
        # turns POST into GET, and only 307 and 308 keep the body.
        if status in (302, 303) and method != "HEAD" or status == 301 and method == "POST":
            method = "GET"
        if status not in (307, 308):
            headers.pop("Content-Type", None)
            body = None
        request = _Request(method, next_origin, target, headers, body)
    raise TooManyRedirects(f"Exceeded {_MAX_REDIRECTS} redirects.", response=response)


def _should_strip_auth(old: "_Origin", new: "_Origin") -> bool:
    """Returns whether a redirect from origin ``old`` to ``new`` drops credentials; as in
    requests, ``http`` on 80 to ``https`` on 443 of one host keeps them."""
    upgrade = old == ("http", new[1], 80) and new == ("https", old[1], 443)
    return old != new and not upgrade


# --------------------------------------------------------------------- errors and tokens


def _http_error(
    response: "Response", secrets: "Iterable[str | None]" = (), named: bool = False
) -> "HTTPError":
    """Returns the :class:`HTTPError` of a 4XX/5XX worded as the original's: validation
    messages (``named``: as the command line shows them), else ``detail``, else requests'.
    The server's words are masked before they are cut: cut, a secret would no longer match."""
    # A streamed body is read only as far as the message needs: the rest stays for the caller.
    body = _json_object(response) if response._peek(_MAX_ERROR_BODY) is not None else {}
    meta = body.get("meta")
    if response.status_code == 400 and body.get("code") == "validation-error" and meta:
        messages = _validation_messages(meta, named) if isinstance(meta, dict) else [str(meta)]
        message = _printable(_masked("; ".join(messages), secrets), _MAX_DETAIL)
    elif "detail" in body:
        message = _printable(_masked(str(body["detail"]), secrets), _MAX_DETAIL)
    else:
        message = response._status_message()
    return HTTPError(message, response=response)


def _json_object(response: "Response") -> "dict[str, Any]":
    """Returns the JSON object in a response's body, or ``{}`` if there is none."""
    try:
        body = response.json()
    except (ValueError, RecursionError):  # RecursionError: JSON nested thousands deep
        return {}
    return body if isinstance(body, dict) else {}


def _validation_messages(meta: "dict[str, Any]", named: bool = False) -> "list[str]":
    """Returns a ``validation-error``'s messages: ``{"head": {"0": ["Foo"]}, "tail": ["Bar"]}``
    gives ``["Foo", "Bar"]``, or ``named``, ``["head.0: Foo", "tail: Bar"]``."""
    messages: list[str] = []
    for field, value in meta.items():
        for key, group in value.items() if isinstance(value, dict) else [(None, value)]:
            name = f"{field}: " if key is None else f"{field}.{key}: "
            for text in map(str, group) if isinstance(group, list) else [str(group)]:
                messages.append(name + text if named else text)
    return messages


def _masked(text: str, secrets: "Iterable[str | None]") -> str:
    """Returns ``text`` with each of ``secrets`` as ``[token]``, in any case (a host comes back
    lower-cased, and a server may change the case of what it echoes)."""
    folded = text.lower()
    for secret in secrets:
        if secret and secret.lower() in folded:
            import re

            text = re.sub(re.escape(secret), "[token]", text, flags=re.IGNORECASE)
    return text


def _credentials_in(headers: "Iterable[tuple[str, str | None]]") -> "list[str]":
    """Returns the forms in which a server may echo ``headers``' (Proxy-)Authorization: whole,
    after the scheme, and for Basic ``user:password`` and the password."""
    forms = []
    for name, value in headers:
        if not value or name.lower() not in ("authorization", "proxy-authorization"):
            continue
        scheme, _, credentials = value.strip().partition(" ")
        credentials = credentials.strip()
        forms += [value, credentials] if credentials else [value]
        if not credentials or scheme.lower() != "basic":
            continue
        import base64

        try:
            raw = base64.b64decode(credentials, validate=True)
            decoded = raw.decode("utf-8")
        except UnicodeDecodeError:  # encoded as Latin-1, as requests does first
            decoded = raw.decode("latin-1")
        except ValueError:  # binascii.Error: not Base64 (UnicodeDecodeError is a ValueError too)
            continue
        forms += [decoded, decoded.partition(":")[2]]
    return forms


def _mask_error(error: "_Error", secrets: "Iterable[str | None]") -> "_Error":
    """Returns ``error`` with each of ``secrets`` as ``[token]`` (in any case) in its messages,
    its causes' and its response's, and without the tracebacks whose locals hold them.

    Servers echo what they were sent (a ``detail``, a ``Set-Cookie``, the token request's form).
    The public methods raise every error through here, from a frame without secrets; an
    exception from outside the module ends the walk: it is the caller's."""
    tokens = [secret for secret in secrets if secret]
    # A body is masked as Latin-1, which maps each byte to one character and back.
    body_tokens = [secret.encode("utf-8").decode("latin-1") for secret in tokens]

    def masked_body(data: bytes) -> bytes:
        return _masked(data.decode("latin-1"), body_tokens).encode("latin-1")

    here = _mask_error.__code__.co_filename
    pending: list[BaseException | None] = [error]
    chain: list[BaseException] = []
    seen: set[int] = set()
    while pending and len(seen) < _MAX_CHAIN:
        item = pending.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        if item.__traceback__ and item.__traceback__.tb_frame.f_code.co_filename != here:
            continue
        chain.append(item)
        # An OSError with an errno keeps its numbers: only its strings are the server's.
        item.args = tuple(_masked(a, tokens) if isinstance(a, str) else a for a in item.args)
        response = getattr(item, "response", None)
        if isinstance(response, Response):
            response.reason = _masked(response.reason, tokens)
            response.url = _masked(response.url, tokens)
            response.headers.update([(n, _masked(v, tokens)) for n, v in response.headers.items()])
            if response._content is not None:
                response._content = masked_body(response._content)
            # What was read of a long streamed error body, and the rest, unread.
            response._peeked = (masked_body(response._peeked[0]), response._peeked[1])
        pending.extend((item.__cause__, item.__context__))
    # Last: on PyPy, an exception caught meanwhile (in re, say) gives the one being handled
    # its traceback back.
    for item in chain:
        item.__traceback__ = None
    return error


_REQUESTS_CLASSES: "dict[type, type]" = {}


def _with_requests_class(cls: "type") -> "type":
    """Returns ``cls`` mixed with the ``requests.exceptions`` class of its name (or its nearest
    base's), so the original's callers catch it; only once the program has imported requests."""
    mixed = _REQUESTS_CLASSES.get(cls)
    if mixed is None:
        exceptions = sys.modules["requests.exceptions"]
        names = [base.__name__ for base in cls.__mro__ if base.__module__ == __name__]
        theirs = next((getattr(exceptions, n) for n in names if hasattr(exceptions, n)), None)
        if theirs is None or issubclass(cls, theirs):
            return cls
        # request: what requests' errors carry beside response; pickled as cls, which has
        # a name to import by (and mixes requests' class in again when it is imported).
        namespace: dict[str, Any] = {"__module__": cls.__module__, "request": None}
        namespace["__reduce__"] = lambda error: (cls, error.args, error.__dict__)
        mixed = _REQUESTS_CLASSES.setdefault(cls, type(cls.__name__, (cls, theirs), namespace))
    return mixed


def _jwt_expiry(token: str) -> "float | None":
    """Returns a JWT's ``exp`` in Unix seconds, or ``None``; unverified (the server checks it),
    it only spares a request that would get a 401."""
    import base64
    import json

    try:
        payload = token.split(".")[1]
        expiry = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["exp"]
    except (IndexError, KeyError, TypeError, ValueError, RecursionError):  # nested too deep
        return None
    # The claim is the server's word: NaN, infinities and years past 9999 would make the
    # comparisons and time.gmtime() fail, so such a token is judged by the server instead.
    number = isinstance(expiry, (int, float)) and not isinstance(expiry, bool)
    return expiry if number and 0 <= expiry < _MAX_EXPIRY else None


# ------------------------------------------------------------------------------ settings


def _settings_path() -> str:
    """Returns the ``.env`` file where the original client's ``xcc config`` saves settings
    (``appdirs.user_config_dir("xanadu-cloud", "Xanadu")`` + ``.env``)."""
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or os.path.expanduser("~\\AppData\\Local")
        return os.path.join(base, "Xanadu", "xanadu-cloud", ".env")
    if sys.platform == "darwin":
        return os.path.expanduser("~/Library/Application Support/xanadu-cloud/.env")
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return os.path.join(base, "xanadu-cloud", ".env")


def _load_settings() -> "dict[str, Any]":
    """Returns the keyword arguments of :class:`Connection` from the ``XANADU_CLOUD_*``
    environment variables over the same keys in the settings file, a ``.env`` file read as
    python-dotenv writes it (quoted or bare values, ``export`` prefixes, comments, blank lines)."""
    path = _settings_path()
    try:
        with open(path, encoding="utf-8") as file:
            lines = file.read().splitlines()
    except FileNotFoundError:
        lines = []
    except (OSError, UnicodeError) as exc:  # a folder, no permission, not UTF-8
        raise ValueError(f"Cannot read the settings file {path!r}: {exc}") from exc
    saved = {}
    for line in lines:
        line = line.strip()
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        field, sep, text = line.partition("=")
        text = text.strip()
        if sep and not line.startswith("#"):
            quoted = len(text) >= 2 and text[0] == text[-1] and text[0] in "'\""
            saved[field.strip()] = text[1:-1] if quoted else text.split(" #", 1)[0].rstrip()
    settings: dict[str, Any] = {}
    for key in _SETTINGS:
        name = "XANADU_CLOUD_" + key
        source = f"the environment variable {name}" if name in os.environ else path
        value = os.environ.get(name, saved.get(name))
        if value is None:
            continue
        _debug("Setting %s from %s", name, source)
        if key == "PORT" and not (_DIGITS.issuperset(value) and 0 < int(value or 0) < 65536):
            what = "a port number"
        elif key == "TLS" and value.lower() not in _TRUE_WORDS | _FALSE_WORDS:
            what = "true or false"
        elif key == "HOST" and not _valid_host(value):
            what = "a host name or an IP address, without a port"
        else:
            if value:  # the port stays a string of digits, which Connection reads as one
                settings[key.lower()] = value.lower() in _TRUE_WORDS if key == "TLS" else value
            continue
        # A value is never shown, not even in a chained cause: a line that lost its line
        # break runs on into the next one ("XANADU_CLOUD_TLS=falseXANADU_CLOUD_REFRESH_...").
        message = f"{name} (from {source}) is not {what}"
        raise ValueError(f"{message} (its value is not shown: it may hold a token)")
    return settings


# -------------------------------------------------------------------------- command line


def main(argv: "list[str] | None" = None) -> int:
    """Runs the command line: ``ping`` or ``request METHOD PATH``; returns the exit status.

    Args:
        argv (List[str], optional): the arguments, ``sys.argv[1:]`` by default

    Returns:
        int: 0 on success, 1 on an error or when the reader of stdout closed it early, 2 on a
        usage error
    """
    import json

    prog, args, kwargs = _arguments(argv)
    if args.verbose:
        import logging

        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        logging.getLogger("xcc").addHandler(handler)
        logging.getLogger("xcc").setLevel(logging.DEBUG)
    overrides = {name: getattr(args, name) for name in ("host", "port") if getattr(args, name)}
    if args.no_tls:
        overrides["tls"] = False
    connection = None
    try:
        with Connection.load(**overrides) as connection:
            response = connection.request(args.method, args.path, **kwargs)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 (one line on stderr, never a traceback)
        print(f"{prog}: error: {_error_line(exc, args.method, connection)}", file=sys.stderr)
        return 1
    # The ping's success, or the body: JSON indented by 4, anything else as it was sent.
    try:
        if args.command == "ping":
            print("Successfully connected to the Xanadu Cloud.")
        else:
            try:
                print(json.dumps(response.json(), indent=4))
            except (ValueError, RecursionError):  # RecursionError: JSON nested too deep
                sys.stdout.flush()
                # buffer.write() may write part and return the count: on to the write that fails.
                data = memoryview(response.content)
                while data:
                    data = data[sys.stdout.buffer.write(data) :]
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader stopped (``| head -1``): end quietly, as Unix tools do. Python flushes
        # stdout again at exit: point it at devnull first (the signal module's recipe).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 0


def _parse(argv: "list[str] | None") -> "tuple[argparse.ArgumentParser, argparse.Namespace]":
    """Returns the command line's parser and ``argv`` parsed; a usage error exits with status 2."""
    import argparse

    class Parser(argparse.ArgumentParser):
        def error(self, message: str) -> "NoReturn":
            self.exit(2, f"{self.prog}: error: {message} (see --help)\n")

    def port(text: str) -> int:
        """Returns the port of ``--port``; anything but 1 to 65535 is a usage error."""
        if text.isdecimal() and 0 < int(text) < 65536:  # "²" is a digit that int() refuses
            return int(text)
        raise argparse.ArgumentTypeError(f"{text!r} is not a port from 1 to 65535")

    def seconds(text: str) -> float:
        """Returns the seconds of ``--timeout``; anything but a number above 0 is a usage error."""
        try:
            if 0 < float(text) <= _MAX_TIMEOUT:  # NaN is not
                return float(text)
        except ValueError:
            pass
        wanted = f"a number of seconds above 0 and at most {_MAX_TIMEOUT}"
        raise argparse.ArgumentTypeError(f"{text!r} is not {wanted}")

    parser = Parser(
        # argparse would say "xcc.py" under "python -m xcc" too.
        prog="python -m xcc" if __name__ == "__main__" and __spec__ is not None else "xcc.py",
        description="Talk to the Xanadu Cloud with the settings that `xcc config` saved.",
        epilog=f"""settings, read from these environment variables over the same lines in
{_settings_path()}:
  XANADU_CLOUD_REFRESH_TOKEN  the Xanadu Cloud API key
  XANADU_CLOUD_ACCESS_TOKEN   an access token (optional)
  XANADU_CLOUD_HOST           default {_DEFAULT_HOST}
  XANADU_CLOUD_PORT           default 443
  XANADU_CLOUD_TLS            true or false, default true
--host, --port and --no-tls win over them. Proxies and CAs come from the variables that
requests reads: HTTPS_PROXY, NO_PROXY, REQUESTS_CA_BUNDLE, SSL_CERT_FILE, ...""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"xcc.py {__version__}")
    parser.add_argument("--host", help="the Xanadu Cloud host (default: from the settings)")
    parser.add_argument("--port", type=port, help="the Xanadu Cloud port")
    parser.add_argument("--no-tls", action="store_true", help="use HTTP instead of HTTPS")
    parser.add_argument("--timeout", type=seconds, default=10, help="seconds to wait (default 10)")
    verbose = "print on stderr where each setting came from and each step: proxy, CA, connection,"
    verbose += " TLS, requests, token refresh (never a token or password)"
    parser.add_argument("-v", "--verbose", action="store_true", help=verbose)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    ping = commands.add_parser("ping", help="check the connection to the Xanadu Cloud")
    ping.set_defaults(method="GET", path="/healthz", param=[], header=[], json=None)
    request = commands.add_parser("request", help="send a request and print the response body")
    request.add_argument("method", help="HTTP method, such as GET")
    request.add_argument("path", help="request path, such as /devices")
    request.add_argument("--json", metavar="BODY", help="JSON request body")
    param = "a query parameter, percent-encoded for you (repeatable)"
    request.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help=param)
    header = "a header field, such as 'Accept: application/json' (repeatable)"
    request.add_argument("--header", action="append", default=[], metavar="NAME:VALUE", help=header)
    return parser, parser.parse_args(argv)


def _arguments(argv: "list[str] | None") -> "tuple[str, argparse.Namespace, dict[str, Any]]":
    """Returns the command line's name, ``argv`` parsed and the keyword arguments of
    :meth:`Connection.request` they give; a usage error exits with status 2."""
    import json

    parser, args = _parse(argv)

    def split(option: str, text: str, sep: str, form: str) -> "tuple[str, str]":
        key, found, value = text.partition(sep)
        if not found:
            parser.error(f"{option} takes {form} (what was given is not shown: it may be a token)")
        return key, value

    params = [split("--param", param, "=", "KEY=VALUE") for param in args.param]
    headers = [split("--header", header, ":", "NAME:VALUE") for header in args.header]
    try:
        body = None if args.json is None else json.loads(args.json)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
        parser.error(f"--json is not valid JSON: {exc}")
    fields = {name.strip(): value.strip() for name, value in headers}
    return parser.prog, args, dict(timeout=args.timeout, params=params, json=body, headers=fields)


def _error_line(exc: Exception, method: str, connection: "Connection | None") -> str:
    """Returns the one line for ``exc`` of a ``method`` request on ``connection`` (``None``: not
    made): the server's answer to which request, a validation error's fields, what to do."""
    message = str(exc)
    if isinstance(exc, HTTPError) and exc.response is not None:
        from urllib.parse import urlsplit

        if _json_object(exc.response).get("code") == "validation-error":
            message = str(_http_error(exc.response, named=True))
        path = urlsplit(exc.response.url).path
        method = "POST" if path == _TOKEN_PATH else method  # the token refresh failed
        message = f"{exc.response.status_code} {method} {path}: {message}"
    # A server's words (a reason, a detail) reach the terminal: never its escapes.
    message = _printable(" ".join(message.split())) or type(exc).__name__
    if connection is None and message == _NO_TOKEN:  # the settings hold none: say where to set one
        message += " Set XANADU_CLOUD_REFRESH_TOKEN to your API key, in the environment or in"
        message += f" {_settings_path()}."
    if isinstance(exc, SSLError):  # the command line has no verify=, only the variables
        message = message.replace(_VERIFY_ADVICE, "")
    elif isinstance(exc, ConnectionError) and getattr(connection, "host", "") == _DEFAULT_HOST:
        message += " The Xanadu Cloud shut down in January 2026: `python offline/standin.py`"
        message += " serves a stand-in for it on this machine."
    return message


if __name__ == "__main__":
    sys.exit(main())
