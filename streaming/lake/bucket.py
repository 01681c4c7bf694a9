"""How the lake's bucket is reached: the sink's options and pyarrow's S3 filesystem.

Every Python process Spark starts for the stream imports this (through the sink), so it
imports no settings: pydantic would add ~0.15 s of CPU to each such process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pyarrow import fs

if TYPE_CHECKING:
    from streaming.lake.config import S3Access


def sink_options(bucket: str, s3: S3Access) -> dict[str, str]:
    """The sink's options: the bucket and how to reach S3 (unset = default AWS chain)."""
    options = {"bucket": bucket, "aws_region": s3.region}
    if s3.endpoint_url:
        options["s3_endpoint_url"] = s3.endpoint_url
    if s3.access_key_id:
        options["aws_access_key_id"] = s3.access_key_id
        # Spark redacts option values whose key matches "secret" in plans and logs.
        options["aws_secret_access_key"] = s3.secret_access_key or ""
    return options


def s3_filesystem(options: dict[str, str]) -> fs.S3FileSystem:
    kwargs: dict[str, Any] = {"region": options.get("aws_region") or "us-east-1"}
    endpoint = options.get("s3_endpoint_url")
    if endpoint:
        scheme, _, rest = endpoint.partition("://")
        kwargs["endpoint_override"] = rest.rstrip("/") if rest else scheme
        kwargs["scheme"] = scheme if rest else "https"
    if options.get("aws_access_key_id"):
        kwargs["access_key"] = options["aws_access_key_id"]
        kwargs["secret_key"] = options.get("aws_secret_access_key", "")
    return fs.S3FileSystem(**kwargs)
