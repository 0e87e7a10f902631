"""Runs real code written for the Xanadu Cloud on xcc.py, against the stand-in, offline.

    python offline/original_check.py               # the original's Python API and CLI
    python offline/original_check.py --strawberryfields   # and RemoteEngine("X8").run()

It needs the original package (``pip install xanadu-cloud-client==0.3.2``), and for
``--strawberryfields`` Strawberry Fields 0.23 too, in the Python that runs it. The
original's ``Connection`` is replaced by this repository's ``xcc.py`` everywhere the
original imported it (``xcc``, ``xcc.connection``, ``xcc.device``, ``xcc.job``,
``xcc.commands``), nothing else is changed, and every step must succeed: the original's
``Device`` and ``Job`` API, a 404 caught as ``requests.exceptions.HTTPError``, and the
``xcc`` command line (each command in a child process). It prints one line per step and
exits 1 on the first failure. ``.ci/run`` runs it where PyPI is reachable.
"""

import importlib.util
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
JOB_SECONDS = 1
CIRCUIT = "name check\nversion 1.0\ntarget X8_01 (shots=4)\n\nMeasureFock() | [0, 1, 2, 3, 4, 5, 6, 7]\n"


def patch_original():
    """Imports the original package and puts this repository's Connection in its place."""
    spec = importlib.util.spec_from_file_location("xcc_py", os.path.join(HERE, "..", "xcc.py"))
    xcc_py = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(xcc_py)
    import xcc  # the original package
    import xcc.commands

    for module in (xcc, xcc.connection, xcc.device, xcc.job, xcc.commands):
        module.Connection = xcc_py.Connection
    return xcc, xcc_py


def check_python_api(xcc, xcc_py, cloud):
    """The original's Device and Job calls, as a user makes them."""
    import requests

    connection = xcc.Connection.load()
    assert isinstance(connection, xcc_py.Connection)
    assert xcc.Connection.load(xcc.Settings()).url() == connection.url()
    devices = xcc.Device.list(connection)
    assert [device.target for device in devices] == ["X8_01"], devices
    device = xcc.Device("X8_01", connection)
    assert device.specification["modes"] == 8 and device.certificate["target"] == "X8_01"
    yield "Device list, specification, certificate"
    job = xcc.Job.submit(connection, name="check", target="X8_01", circuit=CIRCUIT,
                         language="blackbird:1.0")  # fmt: skip
    job.wait(delay=0.1)
    assert job.status == "complete", job.overview
    output = job.result["output"][0]
    assert output.shape == (4, 8), output.shape
    assert job.circuit == CIRCUIT and job.running_time is not None
    assert job.id in [listed.id for listed in xcc.Job.list(connection, limit=10)]
    cloud.job_seconds = 3600  # a job to cancel stays open, however slow this machine is
    other = xcc.Job.submit(connection, name="cancel me", target="X8_01", circuit=CIRCUIT,
                           language="blackbird:1.0")  # fmt: skip
    other.cancel()
    cloud.job_seconds = JOB_SECONDS
    assert other.status == "cancelled", other.status
    yield "Job submit, wait, result {}, circuit, list, cancel".format(output.shape)
    try:
        xcc.Device("NOPE", connection).status
    except requests.exceptions.HTTPError as exc:
        assert exc.response.status_code == 404 and isinstance(exc, xcc_py.HTTPError)
    else:
        raise AssertionError("no HTTPError for an unknown device")
    yield "a 404 caught as requests.exceptions.HTTPError"


def check_command_line(cloud):
    """The original's ``xcc`` command line, each command in a child process."""
    def xcc_cli(*args):
        completed = subprocess.run(
            [sys.executable, __file__, "--cli"] + list(args),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60,
        )  # fmt: skip
        output = completed.stdout.decode("utf-8", "replace")
        if completed.returncode != 0 or "ERROR" in output:
            raise AssertionError("xcc {} failed:\n{}".format(" ".join(args), output))
        return output

    assert "Successfully connected" in xcc_cli("ping")
    assert "X8_01" in xcc_cli("device", "list")
    assert json.loads(xcc_cli("device", "get", "X8_01", "--specification"))["modes"] == 8
    job = json.loads(xcc_cli("job", "submit", "--target", "X8_01", "--circuit", CIRCUIT))
    for _ in range(30):  # the stand-in's jobs take JOB_SECONDS
        if xcc_cli("job", "get", job["id"], "--status").strip() == "complete":
            break
    assert "output" in xcc_cli("job", "get", job["id"], "--result")
    assert job["id"] in xcc_cli("job", "list")
    cloud.job_seconds = 3600  # two commands apart: a loaded machine takes seconds
    other = json.loads(xcc_cli("job", "submit", "--target", "X8_01", "--circuit", CIRCUIT))
    xcc_cli("job", "cancel", other["id"])
    cloud.job_seconds = JOB_SECONDS
    yield "CLI: ping, device list, device get --specification, job submit/get --result/list/cancel"


def check_strawberryfields():
    """Strawberry Fields' RemoteEngine on the original package on xcc.py."""
    import strawberryfields as sf
    from strawberryfields import ops

    program = sf.Program(8, name="check")
    with program.context as q:
        ops.S2gate(1.0) | (q[0], q[4])
        ops.MeasureFock() | q
    result = sf.RemoteEngine("X8").run(program, shots=10)
    assert result.samples.shape == (10, 8), result.samples.shape
    yield "Strawberry Fields RemoteEngine('X8').run(program, shots=10): samples {}".format(
        result.samples.shape
    )


def main(argv):
    xcc, xcc_py = patch_original()
    if argv[:1] == ["--cli"]:
        sys.argv = ["xcc"] + argv[1:]
        return xcc.commands.main()
    sys.path.insert(0, HERE)
    import standin

    with standin.StandIn() as cloud:
        cloud.job_seconds = JOB_SECONDS
        os.environ.update(
            XANADU_CLOUD_HOST=cloud.host,
            XANADU_CLOUD_PORT=str(cloud.port),
            XANADU_CLOUD_TLS="false",
            XANADU_CLOUD_REFRESH_TOKEN=standin.REFRESH_TOKEN,
        )
        os.environ.pop("XANADU_CLOUD_ACCESS_TOKEN", None)
        checks = [check_python_api(xcc, xcc_py, cloud), check_command_line(cloud)]
        if "--strawberryfields" in argv:
            checks.append(check_strawberryfields())
        for check in checks:
            try:
                for step in check:
                    print("ok:", step)
            except Exception as exc:  # noqa: BLE001 (reported, then exit 1)
                print("FAILED: {}: {}".format(type(exc).__name__, exc))
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
