#!/usr/bin/env python3
"""Benchmark xcc.py against a bare socket loop (the floor), raw http.client and the original
xanadu-cloud-client.

Run by hand, never by the test suite; it prints a Markdown report for the README on stdout:

    python offline/bench.py                                   # full run: 5 rounds, medians
    python offline/bench.py --quick                           # smoke run: 1 round, small numbers
    python offline/bench.py --original-python VENV/bin/python # add the original client's column
    python offline/bench.py --install-original                # make that venv under ~/.cache first

The floor (``SocketClient``) is what any client must do for a GET on the same kept-alive
server: ``sendall`` of a fixed request, ``recv``, framing by Content-Length only, ``json.loads``;
in the GET rows every client's requests/s is also shown as a ratio of it.

Each measurement runs in a fresh subprocess (``bench.py _worker ...``) printing one JSON line,
so xcc.py and the original client, both imported as ``xcc``, never meet in one process. The
servers live on 127.0.0.1 and are started and stopped here: nginx when it is installed (else
a stdlib threaded server), over HTTP and HTTPS with a self-signed certificate made by the
``openssl`` CLI, plus a TCP relay in front of the HTTPS port that delays every chunk by 10 ms
each way from its own arrival (a pipeline: a 20 ms round trip) and holds a new connection's
first client bytes one extra round trip, standing in for the TCP handshake that loopback makes
free. The xcc.py and raw workers run in a bare venv made from --python (no site-packages, no
.pth files), as clean as the original client's venv. Bytecode is cached under the temporary
directory (PYTHONPYCACHEPREFIX), except on 3.6/3.7, which write the usual __pycache__/.
Standard library only, CPython 3.6+; peak RSS is read from /proc (Linux).
"""

import argparse
import base64
import datetime
import http.client
import json
import os
import platform
import queue
import shlex
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # where xcc.py is
HOST = "127.0.0.1"
DEVICE_PATH = "/devices/X8_01"
DEVICE = {  # about 400 bytes, like the X8_01 record of the API documentation
    "expected_uptime": {
        day: ["15:00:00+00:00", "22:59:59+00:00"]
        for day in ("monday", "tuesday", "wednesday", "thursday")
    },
    "created_at": "2021-01-27T15:15:25.801308Z",
    "target": "X8_01",
    "status": "online",
    "certificate_url": "https://platform.strawberryfields.ai/devices/X8_01/certificate",
}
TOKEN = ".".join(  # JWT-shaped (header.payload.signature), expiring in 2100
    base64.urlsafe_b64encode(part).rstrip(b"=").decode()
    for part in (b'{"alg":"HS256","typ":"JWT"}', b'{"sub":"bench","exp":4102444800}', b"sig" * 9)
)
HEADERS = {
    "Authorization": "Bearer " + TOKEN,
    "Accept-Version": "0.4.0",
    "User-Agent": "XCC/bench (API)",
}
CLIENTS = ("xccpy", "socket", "raw", "original")
CASES = ("seq", "link", "stream", "startup")
PYV = platform.python_version()


# ------------------------------------------------------------------------------ worker side


def tls_context(cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.verify_flags &= ~getattr(ssl, "VERIFY_X509_STRICT", 0)
    return ctx


class SocketClient:
    """The floor: what any client must do for a GET, no more. One kept-alive socket,
    ``sendall`` and ``recv``, the body framed by Content-Length only (no status check, no
    header parsing, no chunked or close framing), ``json.loads``."""

    def __init__(self, port, tls, cafile):
        self.sock = socket.create_connection((HOST, port), timeout=60)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls:
            self.sock = tls_context(cafile).wrap_socket(self.sock, server_hostname=HOST)
        fields = [("Host", "%s:%d" % (HOST, port))] + list(HEADERS.items())
        self.fields = "".join("%s: %s\r\n" % field for field in fields)
        self.buffer = b""

    def get_json(self, path):
        self.sock.sendall(("GET %s HTTP/1.1\r\n%s\r\n" % (path, self.fields)).encode())
        data = self.buffer
        while b"\r\n\r\n" not in data:
            data += self.recv()
        head, _, data = data.partition(b"\r\n\r\n")
        size = int(head.lower().split(b"\r\ncontent-length:", 1)[1].split(b"\r\n", 1)[0])
        while len(data) < size:
            data += self.recv()
        self.buffer = data[size:]
        return json.loads(data[:size])

    def recv(self):
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed the connection")
        return data


class RawClient:
    def __init__(self, port, tls, cafile):
        if tls:
            ctx = tls_context(cafile)
            self.conn = http.client.HTTPSConnection(HOST, port, timeout=60, context=ctx)
        else:
            self.conn = http.client.HTTPConnection(HOST, port, timeout=60)

    def get_json(self, path):
        self.conn.request("GET", path, headers=HEADERS)
        return json.loads(self.conn.getresponse().read())

    def stream(self, path, size):
        self.conn.request("GET", path, headers=HEADERS)
        r, n = self.conn.getresponse(), 0
        chunk = r.read(size)
        while chunk:
            n += len(chunk)
            chunk = r.read(size)
        return n


class XccClient:
    def __init__(self, xcc, port, tls, cafile):
        self.c = xcc.Connection(access_token=TOKEN, host=HOST, port=port, tls=bool(tls))
        self.kw = {"verify": cafile} if tls else {}

    def get_json(self, path):
        return self.c.request("GET", path, **self.kw).json()

    def stream(self, path, size):
        r, n = self.c.request("GET", path, stream=True, **self.kw), 0
        for chunk in r.iter_content(size):
            n += len(chunk)
        r.close()
        return n


def proc_kb(field):
    with open("/proc/self/status") as f:
        return next(int(x.split()[1]) for x in f if x.startswith(field + ":"))


def worker(argv):
    p = argparse.ArgumentParser(prog="bench.py _worker")
    p.add_argument("--client", choices=CLIENTS, required=True)
    p.add_argument("--case", choices=("seq", "link", "stream"), required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--tls", type=int, default=0)
    p.add_argument("--cafile")
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--size", type=int, default=0, help="expected download size, bytes")
    a = p.parse_args(argv)
    try:
        out = work(a)
    except Exception as e:  # one JSON line either way
        out = {"error": "%s: %s" % (type(e).__name__, e)}
    print(json.dumps(out))


def work(a):
    if a.client in ("raw", "socket"):
        make = RawClient if a.client == "raw" else SocketClient
    else:
        if a.client == "original":  # never pick up the repository's xcc.py
            sys.path[:] = [x for x in sys.path if os.path.abspath(x or ".") != ROOT]
        else:
            sys.path.insert(0, ROOT)
        import xcc

        if (os.path.dirname(os.path.abspath(xcc.__file__)) == ROOT) != (a.client == "xccpy"):
            raise RuntimeError("imported the wrong xcc: " + xcc.__file__)

        def make(port, tls, cafile):
            return XccClient(xcc, port, tls, cafile)

    if a.case == "seq":
        c = make(a.port, a.tls, a.cafile)
        for _ in range(a.warmup):
            c.get_json(DEVICE_PATH)
        t0 = time.perf_counter()
        for _ in range(a.n):
            c.get_json(DEVICE_PATH)
        return {"value": a.n / (time.perf_counter() - t0)}
    if a.case == "link":  # the clock starts before the first connection is made
        t0 = time.perf_counter()
        c = make(a.port, 1, a.cafile)
        for _ in range(a.n):
            assert c.get_json(DEVICE_PATH)["target"] == "X8_01"
        return {"value": time.perf_counter() - t0}
    c = make(a.port, 0, None)  # stream, after a warm-up request on the same connection
    c.get_json(DEVICE_PATH)
    rss0 = proc_kb("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:  # resets VmHWM (peak RSS) to VmRSS
        f.write("5")
    best = 0.0
    for _ in range(3):  # the fastest of 3 downloads: a 0.1 s figure is easily disturbed
        t0 = time.perf_counter()
        n = c.stream("/result", 32768)
        best = max(best, n / (time.perf_counter() - t0) / 2**20)
        if n != a.size:
            raise RuntimeError("got %d bytes, expected %d" % (n, a.size))
    return {"value": best, "rss": (proc_kb("VmHWM") - rss0) / 1024.0}


def pyserver(argv):
    """The fallback server (stdlib, threaded, HTTP/1.1 keep-alive) when nginx is missing."""
    import http.server
    import socketserver

    port, tls_port, size, cert, key = argv
    device, block = json.dumps(DEVICE).encode(), bytes(1 << 20)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def setup(self):
            if isinstance(self.request, ssl.SSLSocket):
                self.request.do_handshake()
            super().setup()

        def log_message(self, *args):
            pass

        def do_GET(self):
            body = {DEVICE_PATH: device, "/healthz": b"{}"}.get(self.path)
            left = int(size) if self.path == "/result" else 0
            self.send_response(200 if body or left else 404)
            body = body or (b"" if left else b'{"detail": "Not Found"}')
            kind = "octet-stream" if left else "json"
            self.send_header("Content-Type", "application/" + kind)
            self.send_header("Content-Length", str(left or len(body)))
            self.end_headers()
            self.wfile.write(body)
            while left:
                self.wfile.write(memoryview(block)[: min(left, len(block))])
                left -= min(left, len(block))

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True

        def handle_error(self, request, client_address):
            pass

    plain, secure = Server((HOST, int(port)), Handler), Server((HOST, int(tls_port)), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    secure.socket = ctx.wrap_socket(secure.socket, server_side=True, do_handshake_on_connect=False)
    threading.Thread(target=secure.serve_forever, daemon=True).start()
    print("ready", flush=True)
    plain.serve_forever()


# ------------------------------------------------------------------------- servers, relay

NGINX_CONF = """worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {d}/t1; proxy_temp_path {d}/t2; fastcgi_temp_path {d}/t3;
    uwsgi_temp_path {d}/t4; scgi_temp_path {d}/t5;
    keepalive_requests 100000;
    keepalive_timeout 60;
    sendfile on;
    tcp_nodelay on;
    server {{
        listen {host}:{port};
        listen {host}:{tls_port} ssl;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_certificate {d}/cert.pem;
        ssl_certificate_key {d}/key.pem;
        root {d}/www;
        location = /healthz {{ default_type application/json; return 200 "{{}}"; }}
        location = /result {{ default_type application/octet-stream; }}
        location / {{ default_type application/json; }}
    }}
}}
"""


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end and proc.poll() is None:
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def start_server(tmp, size, want):
    """Start nginx or the stdlib server: return (process, http port, https port, description)."""
    port, tls_port = free_port(), free_port()
    nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if want != "python" and nginx:
        os.makedirs(os.path.join(tmp, "www", "devices"))
        with open(os.path.join(tmp, "www", "devices", "X8_01"), "w") as f:
            json.dump(DEVICE, f)
        with open(os.path.join(tmp, "www", "result"), "wb") as f:
            f.truncate(size)
        www = [tmp, os.path.join(tmp, "www"), os.path.join(tmp, "www", "devices")]
        for path in www:  # nginx workers may run as another user (only our own files here)
            os.chmod(path, 0o755)
        os.chmod(os.path.join(www[2], "X8_01"), 0o644)
        os.chmod(os.path.join(www[1], "result"), 0o644)
        conf = os.path.join(tmp, "nginx.conf")
        with open(conf, "w") as f:
            f.write(NGINX_CONF.format(d=tmp, host=HOST, port=port, tls_port=tls_port))
        log = open(os.path.join(tmp, "nginx.out"), "w")
        cmd = [nginx, "-p", tmp, "-c", conf, "-e", os.path.join(tmp, "error.log")]
        proc = subprocess.Popen(cmd, stdout=log, stderr=log)
        if wait_port(port, proc) and wait_port(tls_port, proc):
            version = subprocess.run([nginx, "-v"], stderr=subprocess.PIPE).stderr.decode()
            return proc, port, tls_port, version.strip().replace("nginx version: ", "")
        stop(proc)
        with open(log.name) as f:
            note("nginx failed (%s); using the stdlib server" % f.read().strip()[-200:])
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    args = [str(port), str(tls_port), str(size), cert, key]
    proc = subprocess.Popen([sys.executable, __file__, "_pyserver"] + args, stdout=subprocess.PIPE)
    if proc.stdout.readline().strip() != b"ready":
        raise SystemExit("the stdlib fallback server failed to start")
    return proc, port, tls_port, "stdlib http.server (threaded) + ssl, Python " + PYV


def stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Relay:
    """Loopback TCP relay that delays every chunk by `delay` seconds each way, as a pipeline."""

    def __init__(self, target_port, delay=0.010):
        self.target, self.delay = target_port, delay
        self.sock = socket.socket()
        self.sock.bind((HOST, 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:  # closed
                return
            now = time.monotonic()
            upstream = socket.create_connection((HOST, self.target))
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # A client's first bytes wait one round trip more: the TCP handshake loopback skips.
            self.pipe(client, upstream, now + 2 * self.delay)
            self.pipe(upstream, client, 0.0)

    def pipe(self, src, dst, not_before):
        chunks = queue.Queue()

        def reader():  # stamps each chunk with the time it may leave
            data = True
            while data:
                try:
                    data = src.recv(65536)
                except OSError:
                    data = b""
                chunks.put((max(time.monotonic(), not_before) + self.delay, data))

        def writer():
            while True:
                due, data = chunks.get()
                time.sleep(max(0.0, due - time.monotonic()))
                try:
                    if not data:
                        return dst.shutdown(socket.SHUT_WR)
                    dst.sendall(data)
                except OSError:
                    for s in (src, dst):
                        try:
                            s.shutdown(socket.SHUT_RDWR)
                        except OSError:
                            pass
                    return

        for fn in (reader, writer):
            threading.Thread(target=fn, daemon=True).start()


def relay_check(port, cafile, n=10):
    """Raw client through the relay: ms for connect + TLS + first GET, median keep-alive GET."""
    t0 = time.perf_counter()
    c = RawClient(port, True, cafile)
    c.get_json(DEVICE_PATH)
    first, times = (time.perf_counter() - t0) * 1000, []
    for _ in range(n):
        t0 = time.perf_counter()
        c.get_json(DEVICE_PATH)
        times.append((time.perf_counter() - t0) * 1000)
    c.conn.close()
    return first, statistics.median(times)


# ---------------------------------------------------------------------------- orchestration


def note(msg):
    print("[bench] " + msg, file=sys.stderr, flush=True)


def worker_env(tmp):
    drop = {"PYTHONPATH", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR"}
    env = {
        k: v for k, v in os.environ.items() if k not in drop and not k.lower().endswith("_proxy")
    }
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # cached bytecode, as on a user's machine, but...
    env["PYTHONPYCACHEPREFIX"] = os.path.join(tmp, "pycache")  # ...not in the repo (3.8+)
    return env


def run(cmd, env, cwd, timeout=900):
    """Run a command: return (stdout, error message or None, wall seconds)."""
    t0 = time.perf_counter()
    try:
        p = subprocess.run(
            cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return "", str(e), time.perf_counter() - t0
    dt, err = time.perf_counter() - t0, None
    if p.returncode:
        err = (p.stderr.decode(errors="replace").strip().splitlines() or ["exit status"])[-1]
    return p.stdout.decode(errors="replace"), err, dt


def probe(python, client, env, cwd):
    """Return (description, None) if `python` imports this client's xcc, else (None, why)."""
    code = (
        "import os, platform, xcc; xcc.Connection; print(xcc.__version__, "
        "platform.python_version(), os.path.dirname(os.path.abspath(xcc.__file__)))"
    )
    if client == "xccpy":
        code = "import sys; sys.path.insert(0, %r); %s" % (ROOT, code)
    out, err, _ = run([python, "-c", code], env, cwd, timeout=120)
    if err:
        return None, err
    version, pyv, where = out.split()
    if (where == ROOT) != (client == "xccpy"):
        return None, "imports the wrong xcc (%s)" % where
    return "%s on Python %s" % (version, pyv) + (" (%s)" % python) * (client != "xccpy"), None


def install_original():
    venv = os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "xcc-bench", "venv"
    )
    python = os.path.join(venv, "Scripts" if os.name == "nt" else "bin", "python")
    check = [python, "-c", "import xcc"]  # run away from the repo's xcc.py
    if os.path.exists(python) and not subprocess.run(check, cwd=tempfile.gettempdir()).returncode:
        return python
    if not os.path.exists(python):
        note("creating %s" % venv)
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    note("pip install xanadu-cloud-client into %s" % venv)
    pip = [python, "-m", "pip", "install", "-q", "xanadu-cloud-client"]
    subprocess.run(pip, check=True, cwd=tempfile.gettempdir())
    return python


def startup_code(client, kind, port):
    """`python -c` code: empty ("pass"), `import xcc` timed inside, or one cold request."""
    pre = "import sys; sys.path.insert(0, %r); " % ROOT if client == "xccpy" else ""
    if kind == "pass":
        return "pass"
    if kind == "import":
        return (
            pre + "import time; t = time.perf_counter(); import xcc; print(time.perf_counter() - t)"
        )
    if client == "raw":
        return (
            "import http.client, json; c = http.client.HTTPConnection(%r, %d); "
            "c.request('GET', %r, headers=%r); json.loads(c.getresponse().read())"
        ) % (HOST, port, DEVICE_PATH, HEADERS)
    return pre + (
        "import xcc; xcc.Connection(access_token=%r, host=%r, port=%d, tls=False)"
        ".request('GET', %r).json()" % (TOKEN, HOST, port, DEVICE_PATH)
    )


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="bench.py",
        description="Benchmark xcc.py against a bare socket loop, raw http.client and the "
        "original xcc client. Prints a Markdown report on stdout and progress on stderr.",
    )
    p.add_argument("--rounds", type=int, help="rounds per case; medians shown (default 5)")
    p.add_argument(
        "--quick", action="store_true", help="smoke run: 1 round, 200 requests, 10 MiB, 3 starts"
    )
    p.add_argument("--cases", default=",".join(CASES), help="subset of %s" % ",".join(CASES))
    p.add_argument("--requests", type=int, help="timed requests per sequential round (2000)")
    p.add_argument("--download-mb", type=int, help="size of the download in MiB (100)")
    p.add_argument("--startup-runs", type=int, help="fresh processes per start-up figure (10)")
    p.add_argument(
        "--original-python",
        default=os.environ.get("XCC_ORIGINAL_PYTHON"),
        help="a Python where `pip install xanadu-cloud-client` was done "
        "(default: $XCC_ORIGINAL_PYTHON); without one that column says 'not installed'",
    )
    p.add_argument(
        "--install-original", action="store_true", help="make such a venv in ~/.cache/xcc-bench"
    )
    p.add_argument("--python", default=sys.executable, help="Python for xcc.py and raw workers")
    p.add_argument(
        "--no-venv",
        action="store_true",
        help="run them in that Python as it is, not in a bare venv of it (site-packages and "
        ".pth files then count in start-up times)",
    )
    p.add_argument("--server", choices=("auto", "nginx", "python"), default="auto")
    p.add_argument("--json", metavar="FILE", help="also write every measurement to FILE")
    a = p.parse_args(argv)
    a.rounds = a.rounds or (1 if a.quick else 5)
    a.requests = a.requests or (200 if a.quick else 2000)
    a.warmup = 10 if a.quick else 50
    a.download_mb = a.download_mb or (10 if a.quick else 100)
    a.startup_runs = a.startup_runs or (3 if a.quick else 10)
    a.cases = [c.strip() for c in a.cases.split(",") if c.strip()]
    if set(a.cases) - set(CASES):
        p.error("unknown case(s): %s" % ", ".join(sorted(set(a.cases) - set(CASES))))
    return a


def machine():
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(x.split(":", 1)[1].strip() for x in f if x.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return "%s %s, %s, %d cores, %.1f GiB RAM" % (
        platform.system(),
        platform.machine(),
        cpu,
        os.cpu_count(),
        mem,
    )


def measure(a, tmp, env, pythons, results):
    """Start the servers, run every case, stop them; return rows for the header table."""
    size = a.download_mb * 2**20
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    openssl = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"]
    openssl += ["-keyout", key, "-out", cert, "-subj", "/CN=127.0.0.1"]
    openssl += ["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"]
    subprocess.run(openssl, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    proc, port, tls_port, server = start_server(tmp, size, a.server)
    info, relay, clients = [("server", server)], None, [c for c in CLIENTS if c in pythons]

    def add(key, client, value):
        results.setdefault((key, client), []).append(value)

    try:
        jobs = []
        if "seq" in a.cases:
            jobs.append(("http", ["--case", "seq", "--port", str(port)]))
            jobs.append(("https", ["--case", "seq", "--port", str(tls_port), "--tls", "1"]))
        if "link" in a.cases:
            relay = Relay(tls_port)
            check = (
                "raw client: connect + TLS + GET %.1f ms (3 round trips), keep-alive GET %.1f ms"
            )
            info.append(("20 ms relay", check % relay_check(relay.port, cert)))
            jobs.append(("link", ["--case", "link", "--port", str(relay.port), "--n", "20"]))
        if "stream" in a.cases:
            jobs.append(("stream", ["--case", "stream", "--port", str(port)]))
        common = ["--cafile", cert, "--n", str(a.requests), "--warmup", str(a.warmup)]
        common += ["--size", str(size)]
        for r in range(a.rounds):  # clients interleaved, so drift hits all of them alike
            for key, extra in jobs:
                for client in clients:
                    if client == "socket" and key not in ("http", "https"):
                        continue  # the floor is a GET loop, on one socket made beforehand
                    note("round %d/%d: %s, %s" % (r + 1, a.rounds, key, client))
                    cmd = [pythons[client], os.path.abspath(__file__), "_worker"]
                    out, err, _ = run(cmd + ["--client", client] + common + extra, env, tmp)
                    try:
                        out = err or json.loads(out.strip().splitlines()[-1])
                    except (ValueError, IndexError):
                        out = "no JSON from the worker"
                    err = out if isinstance(out, str) else out.get("error")
                    if err:
                        note("%s/%s failed: %s" % (key, client, err))
                    add(key, client, err or out["value"])
                    if not err and "rss" in out:
                        add("rss", client, out["rss"])
        for i in range(a.startup_runs + 1 if "startup" in a.cases else 0):
            note("start-up run %d/%d (run 0 warms the caches)" % (i, a.startup_runs))
            for key in ("pass", "import", "cold"):
                for client in clients:
                    if client == "socket" or key == "import" and client == "raw":
                        continue
                    code = startup_code(client, key, port)
                    out, err, dt = run([pythons[client], "-c", code], env, tmp, 120)
                    if i and key == "import" and not err:  # timed inside the process
                        try:
                            dt = float(out)
                        except ValueError:
                            err = "unexpected output: %r" % out[:40]
                    if i:
                        add(key, client, err or dt * 1000)
    finally:
        if relay:
            relay.sock.close()
        stop(proc)
    return info


def loadavg():
    """Other work on the machine disturbs every figure: the report shows how much there was."""
    try:
        return "%.2f" % os.getloadavg()[0]
    except (AttributeError, OSError):
        return "?"


def bare_venv(python, tmp):
    """A venv of `python` without site-packages (as clean as the original client's venv)."""
    venv = os.path.join(tmp, "venv")
    cmd = [python, "-m", "venv", "--without-pip", venv]
    if subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode:
        note("could not make a venv of %s; using it as it is" % python)
        return python
    return os.path.join(venv, "Scripts" if os.name == "nt" else "bin", "python")


def main(argv):
    if argv[:1] == ["_worker"]:
        return worker(argv[1:])
    if argv[:1] == ["_pyserver"]:
        return pyserver(argv[1:])
    a, started, load = parse_args(argv), time.perf_counter(), loadavg()
    tmp = tempfile.mkdtemp(prefix="xcc-bench-")
    env, status, results = worker_env(tmp), {}, {}
    try:
        version = run(
            [a.python, "-c", "import platform; print(platform.python_version())"], env, tmp
        )
        python = "%s (%s)" % (version[0].strip(), a.python)
        if not a.no_venv:
            a.python, python = bare_venv(a.python, tmp), python + " in a bare venv"
        pythons = {"xccpy": a.python, "socket": a.python, "raw": a.python}
        if a.install_original:
            a.original_python = install_original()
        if a.original_python:
            pythons["original"] = a.original_python
        for client in ("xccpy", "original"):
            status[client], why = None, None
            if client in pythons:
                status[client], why = probe(pythons[client], client, env, tmp)
            if not status[client]:
                status[client] = "not available (%s)" % why if why else "not installed"
                pythons.pop(client, None)
                note("%s: %s" % (client, status[client]))
        info = measure(a, tmp, env, pythons, results)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"%s/%s" % k: v for k, v in results.items()}, f, indent=1)
    rounds = "%d, medians shown; start-up: %d fresh processes each" % (a.rounds, a.startup_runs)
    rows = [
        ("date", datetime.datetime.now().strftime("%Y-%m-%d %H:%M")),
        ("Python", python),
        ("machine", machine()),
        ("command", "`%s`" % " ".join(shlex.quote(x) for x in ["python"] + sys.argv)),
        ("xcc.py", status["xccpy"]),
        ("original xcc", status["original"]),
    ]
    rows += info + [("rounds", rounds), ("run time", "%.0f s" % (time.perf_counter() - started))]
    rows += [("load average (1 min)", "%s at the start, %s at the end" % (load, loadavg()))]
    print("| | |\n|---|---|")
    print("\n".join("| %s | %s |" % row for row in rows))
    print("\n" + report(results, a, status))


# fmt: off
ROWS = [  # key, label, format, target, checks: (xcc.py alone or / raw or / original, limit, sign)
    ("http", "GET {path} over HTTP, req/s ({n} requests)", "%.0f",
     "≥ 0.70× socket (then 0.80×); ≥ 0.80× raw", [("socket", 0.7, 1), ("raw", 0.8, 1)]),
    ("https", "GET {path} over HTTPS, req/s", "%.0f", "≥ 0.80× raw", [("raw", 0.8, 1)]),
    ("link", "20 HTTPS GETs over a 20 ms link from a fresh process, s", "%.3f",
     "≤ 1.15× raw; original ≥ 2.5× xcc.py", [("raw", 1.15, -1), ("original", 0.4, -1)]),
    ("stream", "{mb} MiB streamed download over HTTP, MiB/s (best of 3)", "%.0f", "≥ 0.80× raw",
     [("raw", 0.8, 1)]),
    ("rss", "{mb} MiB download: peak RSS growth, MiB", "%.1f", "≤ 8 MiB", [("xccpy", 8, -1)]),
    ("import", "`import xcc` in a fresh process, ms", "%.1f", "≤ 0.05× original",
     [("original", 0.05, -1)]),
    ("cold", "fresh process: import, Connection, 1 GET, .json(), ms", "%.0f",
     "≤ 0.15× original", [("original", 0.15, -1)]),
    ("pass", "(context) `python -c pass`, ms", "%.0f", "", []),
]
# fmt: on


def report(results, a, status):
    """The results table: medians, ratios, targets, verdicts."""
    labels = {"path": DEVICE_PATH, "n": a.requests, "mb": a.download_mb}
    out = [
        "| case | xcc.py | bare socket | raw http.client (/ socket) | original xcc (/ socket) "
        "| xcc.py / socket | xcc.py / raw | xcc.py / original | target | result |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for key, label, fmt, goal, checks in ROWS:
        if not any(k == key for k, _ in results):
            continue
        m, cells = {}, []
        for c in CLIENTS:
            values = results.get((key, c), [])
            errors = [v for v in values if isinstance(v, str)]
            m[c] = None if errors or not values else statistics.median(values)
            if m[c] is not None:
                floor = m.get("socket") if c in ("raw", "original") else None
                cells.append(fmt % m[c] + (" (%.2f×)" % (m[c] / floor) if floor else ""))
            elif errors:
                cells.append("error: " + errors[0][:60].replace("|", "/"))
            elif c in status and status[c].startswith("not "):
                cells.append(status[c].split(" (")[0])
            else:
                cells.append("–")
        x, ratio = m["xccpy"], {"xccpy": m["xccpy"]}
        for c in CLIENTS[1:]:
            ok = x is not None and m[c] and key not in ("rss", "pass")
            ratio[c] = x / m[c] if ok else None
        cells += ["%.2f" % ratio[c] if ratio[c] is not None else "–" for c in CLIENTS[1:]]
        verdicts = [
            "n/a" if ratio[c] is None else "PASS" if (ratio[c] - limit) * sign >= 0 else "FAIL"
            for c, limit, sign in checks
        ]
        row = (label.format(**labels), " | ".join(cells), goal, "; ".join(verdicts))
        out.append("| %s | %s | %s | %s |" % row)
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
