"""The Xanadu Cloud Client's documented example, run end to end against a local stand-in.

``python offline/demo.py`` needs no network and no account: it starts ``standin.StandIn`` on
127.0.0.1, gives ``xcc.Connection`` the stand-in's API key and a stale access token,
replays the example of ``xcc.Connection``'s documentation, then shows what reached the
server: the stale token's 401, the token refresh, the retried ping and the device query.
No token value is ever printed.
"""

import json
import os
import re
import sys
import time

import standin

# xcc.py stands one folder up, at the top of the repository.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

EXPECTED = [
    ("GET", "/healthz", 401),
    ("POST", standin.TOKEN_PATH, 200),
    ("GET", "/healthz", 200),
    ("GET", "/devices/X8_01", 200),
]


def main():
    import xcc

    stale = standin.make_jwt(time.time() + 3600)  # looks valid, but the server never issued it
    with standin.StandIn() as cloud:
        print(">>> import xcc")
        print(
            ">>> connection = xcc.Connection(refresh_token=API_KEY, access_token=STALE_TOKEN, "
            'host="{}", port={}, tls=False)'.format(cloud.host, cloud.port)
        )
        connection = xcc.Connection(
            refresh_token=standin.REFRESH_TOKEN,
            access_token=stale,
            host=cloud.host,
            port=cloud.port,
            tls=False,
        )
        try:
            print(">>> connection.ping()")
            print(repr(connection.ping()))
            print('>>> response = connection.request(method="GET", path="/devices/X8_01")')
            response = connection.request(method="GET", path="/devices/X8_01")
            print(">>> response")
            print(repr(response))
            print(">>> import json")
            print(">>> print(json.dumps(response.json(), indent=4))")
            body = response.json()
            print(json.dumps(body, indent=4))
        finally:
            close = getattr(connection, "close", None)
            if close is not None:
                close()
        recorded = list(cloud.requests)

    print()
    print("What reached the stand-in:")
    for record in recorded:
        print(
            "  {:<5} {:<52} -> {}  (TCP connection {})".format(
                record.method, record.path, record.status, record.connection
            )
        )
    trace = [(r.method, r.path, r.status) for r in recorded]
    if trace != EXPECTED:
        raise RuntimeError("the stand-in saw {} where {} was expected".format(trace, EXPECTED))
    if json.dumps(body) != json.dumps(standin.X8_01):
        raise RuntimeError("GET /devices/X8_01 returned a different record")


if __name__ == "__main__":
    try:
        main()
    except Exception as error:  # pylint: disable=broad-except
        message = "{}: {}".format(type(error).__name__, error).splitlines()[0]
        message = re.sub(r"[\w-]{16,}\.[\w-]{16,}\.[\w-]*", "***", message)  # hide any JWT
        sys.stdout.flush()
        print("demo.py: error: " + message, file=sys.stderr)
        sys.exit(1)
