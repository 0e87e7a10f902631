"""A typed user script: the calls that the Xanadu Cloud Client documents, as a typed code
base makes them.

``.ci/run`` checks it with ``mypy --strict xcc.py offline/typed_example.py``, so each call
below must agree with xcc.py's annotations, and each result is bound to a declared type so
that an annotation that went missing or wrong is an error rather than a silent ``Any``.
The tests run it against the stand-in too (``python offline/typed_example.py HOST PORT
API_KEY``, plain HTTP): the annotations cost nothing and break nothing at run time.
"""

import os
import sys
import time
from typing import Any, Dict, Iterator, List, Optional

# xcc.py stands one folder up, at the top of the repository.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import xcc  # noqa: E402


def get_device(connection: xcc.Connection, target: str) -> Dict[str, Any]:
    """Returns a device's description, as the original client's ``Device`` fetches it."""
    response: xcc.Response = connection.request(method="GET", path=f"/devices/{target}")
    device: Dict[str, Any] = response.json()
    return device


def stream_result(connection: xcc.Connection, job_id: str) -> int:
    """Reads a job's result in chunks of 32 KiB, as the original client's ``Job`` does;
    returns its size in bytes."""
    response = connection.request("GET", f"/jobs/{job_id}/result", stream=True, timeout=(5, 30))
    response.raise_for_status()
    chunks: Iterator[bytes] = response.iter_content(chunk_size=32768)
    size = sum(len(chunk) for chunk in chunks)
    response.close()
    return size


def main(argv: List[str]) -> int:
    """Runs the calls against the server at ``HOST PORT`` with ``API_KEY``; prints what came
    back (never a token)."""
    host, port, api_key = argv[0], int(argv[1]), argv[2]
    connection = xcc.Connection(
        refresh_token=api_key, host=host, port=port, tls=False, headers={"X-Example": "typed"}
    )
    ping: xcc.Response = connection.ping()
    status_code: int = ping.status_code
    ok: bool = ping.ok
    url: str = connection.url("/devices")
    connection.update_access_token()
    token: Optional[str] = connection.access_token
    headers: Dict[str, str] = connection.headers
    settings = (connection.host, connection.port, connection.tls, connection.api_version)
    device = get_device(connection, "X8_01")
    circuit = "name typed\nversion 1.0\ntarget X8_01 (shots=2)\n"
    job: Dict[str, Any] = connection.request(
        "POST", "/jobs", json={"name": "typed", "target": "X8_01", "circuit": circuit}
    ).json()
    while job["status"] not in ("complete", "failed", "cancelled"):
        time.sleep(0.1)
        job = connection.request("GET", f"/jobs/{job['id']}").json()
    size = stream_result(connection, str(job["id"]))
    content_type: Optional[str] = ping.headers.get("Content-Type")
    try:
        connection.request("GET", "/devices/nowhere", params={"size": 1}, headers={"X-No": None})
    except xcc.HTTPError as exc:
        missing: Optional[xcc.Response] = exc.response
        error = f"HTTPError {missing.status_code if missing is not None else None}: {exc}"
    except xcc.RequestException as exc:  # ConnectionError, Timeout, ...
        error = f"{type(exc).__name__}: {exc}"
    else:
        error = "no error"
    connection.close()
    print(f"ping: {status_code} ok={ok} ({content_type})")
    print(f"url: {url}")
    print(f"token: {'set' if token else 'missing'}; Authorization: {'Authorization' in headers}")
    print(f"settings: {settings}")
    print(f"device: {device['target']} {device['status']}")
    print(f"result: {size} bytes")
    print(f"error: {error}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
