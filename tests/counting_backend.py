"""A test plugin: the local backend under another name, logging every submission.

Loaded through ``REELVAULT_PLUGINS=tests.counting_backend`` by the worker tests, so that
several worker processes can prove no job was ever submitted twice.
"""

from __future__ import annotations

import os
from pathlib import Path

from core.api import GenerationRequest, JobStatus, hookimpl
from plugins.local_backend import LocalBackend

LOG_ENV = "REELVAULT_TEST_SUBMIT_LOG"


class CountingBackend(LocalBackend):
    name = "counting"
    description = "the local backend, logging each submission (tests only)"

    def submit(self, request: GenerationRequest) -> JobStatus:
        status = super().submit(request)
        with open(os.environ[LOG_ENV], "a") as log:  # O_APPEND: one line per call
            log.write(f"{os.getpid()} {status.job_id} {request.prompt}\n")
        return status


@hookimpl
def register_backends(register, settings) -> None:
    register(CountingBackend(Path(settings.work_dir) / "counting"))
