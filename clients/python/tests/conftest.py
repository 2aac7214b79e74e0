"""Starts a real vdbd for the tests: `VDB_VDBD` names the binary (default:
the repository's target/debug/vdbd, built by `cargo build -p vdb-server`)."""

import os
import subprocess
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def server():
    binary = os.environ.get("VDB_VDBD", str(REPO / "target" / "debug" / "vdbd"))
    if not Path(binary).is_file():
        pytest.fail(f"no vdbd at {binary}: run `cargo build -p vdb-server` or set VDB_VDBD")
    with tempfile.TemporaryDirectory() as data:
        proc = subprocess.Popen(
            [binary, "--listen", "127.0.0.1:0", "--data-dir", data, "--log", "warn"],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            line = proc.stdout.readline()
            prefix = "vdbd listening on "
            if not line.startswith(prefix):
                pytest.fail(f"vdbd did not start: {line!r}")
            yield line[len(prefix) :].strip()
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture
def client(server):
    from vdb_client import Client

    with Client(server, timeout=60) as c:
        yield c


@pytest.fixture
def name(request, client):
    """A fresh collection name, dropped afterwards."""
    n = "py_" + request.node.name.replace("[", "_").replace("]", "_")[:40]
    yield n
    try:
        client.drop(n)
    except Exception:
        pass
