"""Builds vdb-client, generating the gRPC stubs from the repository's proto.

The stubs are not committed: `build_py` runs grpcio-tools' protoc on
`proto/vdb/v1/vdb.proto` (two directories up, in a clone) and writes
`vdb_client/_proto/vdb_pb2.py`, `vdb_pb2.pyi` and `vdb_pb2_grpc.py` into
the build. `VDB_PROTO` names another copy of the file.
"""

import os
import shutil
import tempfile
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


def proto_file() -> Path:
    given = os.environ.get("VDB_PROTO")
    path = Path(given) if given else HERE.parent.parent / "proto" / "vdb" / "v1" / "vdb.proto"
    if not path.is_file():
        raise SystemExit(
            f"vdb-client: cannot find the API definition at {path}; build from a clone of vdb "
            "(pip install ./clients/python) or set VDB_PROTO to vdb.proto"
        )
    return path


class BuildWithStubs(build_py):
    def run(self):
        super().run()
        from grpc_tools import protoc

        out = Path(self.build_lib)
        with tempfile.TemporaryDirectory() as tmp:
            # Compiled as vdb_client/_proto/vdb.proto, the generated modules
            # import each other as vdb_client._proto.*; the proto's package
            # (vdb.v1, which names the service on the wire) is unchanged.
            staged = Path(tmp) / "vdb_client" / "_proto" / "vdb.proto"
            staged.parent.mkdir(parents=True)
            shutil.copyfile(proto_file(), staged)
            (out / "vdb_client" / "_proto").mkdir(parents=True, exist_ok=True)
            code = protoc.main(
                [
                    "grpc_tools.protoc",
                    f"-I{tmp}",
                    f"--python_out={out}",
                    f"--pyi_out={out}",
                    f"--grpc_python_out={out}",
                    str(staged),
                ]
            )
            if code != 0:
                raise SystemExit(f"vdb-client: protoc failed ({code}) on {proto_file()}")
        (out / "vdb_client" / "_proto" / "__init__.py").write_text("")


setup(cmdclass={"build_py": BuildWithStubs})
