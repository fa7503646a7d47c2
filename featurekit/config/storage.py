"""Object storage settings for readers outside Spark (delta-rs), from the ones Spark gets.

Spark reaches ``s3a://`` through hadoop-aws, configured by ``spark.hadoop.fs.s3a.*`` in conf/.
featurekit also reads tables without a JVM (``featurekit show``, the Feast definitions' schemas,
lineage's commit metadata) with delta-rs, whose object store takes its own option names. This
maps the one onto the other, so an environment states its storage once. Credentials are not
mapped: both read the same environment variables (``AWS_ACCESS_KEY_ID``, ...).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

_S3A = "spark.hadoop.fs.s3a."


def delta_rs_options(spark_conf: Mapping[str, str]) -> dict[str, str]:
    """delta-rs ``storage_options`` equivalent to the s3a settings in ``spark_conf``."""
    options: dict[str, str] = {}
    endpoint = spark_conf.get(_S3A + "endpoint")
    if endpoint:
        if "://" not in endpoint:  # s3a takes a bare host, meaning https
            endpoint = "https://" + endpoint
        options["AWS_ENDPOINT_URL"] = endpoint
        if endpoint.startswith("http://"):
            options["AWS_ALLOW_HTTP"] = "true"
    region = spark_conf.get(_S3A + "endpoint.region") or spark_conf.get(_S3A + "region")
    if region:
        options["AWS_REGION"] = region
    path_style = spark_conf.get(_S3A + "path.style.access")
    if path_style is not None:
        options["AWS_VIRTUAL_HOSTED_STYLE_REQUEST"] = "false" if path_style.lower() == "true" else "true"
    return options


def absolute(path: str) -> str:
    """A local path made absolute (a URI as it is): how table, spine and output paths compare."""
    return path if "://" in path else str(Path(path).expanduser().resolve())
