"""The S3 client, configured the standard AWS way (see :mod:`core.media.s3`).

Apart from the store so that a fault in the AWS configuration itself (a profile that is
nowhere) is one clear line like every other storage fault, not a client traceback.
"""

from __future__ import annotations

import os
from typing import Any

from core.api.errors import StorageError

AWS_FILES = (
    ("AWS_CONFIG_FILE", "~/.aws/config"),
    ("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials"),
)
"""Where profiles are read from: each variable, or the usual file (for messages)."""


def _boto3() -> Any:
    try:
        import boto3
    except ImportError:
        raise StorageError(
            "an s3:// media store needs boto3: pip install 'reelvault[s3]'"
        ) from None
    return boto3


def client_from_environment() -> Any:
    """An S3 client configured the standard AWS way (see the module doc).

    A custom endpoint (MinIO, SeaweedFS, …) gets path-style addressing, which they all
    serve; checksums are sent only where S3 requires them, which older servers need.
    """
    boto3 = _boto3()
    from botocore.config import Config
    from botocore.exceptions import ProfileNotFound

    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    config = Config(
        s3={"addressing_style": "path"} if endpoint else {},
        signature_version="s3v4",  # presigned URLs too (botocore's default for them is v2)
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=10,
        read_timeout=60,
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    try:
        session = boto3.session.Session()
        if region is None and session.region_name is None:
            region = "us-east-1"
        return session.client("s3", region_name=region, config=config)
    except ProfileNotFound as exc:
        config_file, credentials_file = (os.environ.get(name, usual) for name, usual in AWS_FILES)
        raise StorageError(
            f"the AWS profile {exc.kwargs.get('profile')!r} is in neither {config_file} "
            f"nor {credentials_file}"
        ) from None
