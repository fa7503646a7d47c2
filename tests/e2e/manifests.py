"""Running a rendered SparkApplication's spec under local spark-submit, as the operator would.

The operator runs ``spark-submit <sparkConf> <mainApplicationFile> <arguments>`` in the image,
where /opt/featurekit is the project; here the image's ``entrypoint.py`` is this package's, the
image's Python is this interpreter and the jars the image bakes in are given with ``--jars``.
Everything else of the spec is used as it is.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import featurekit
from featurekit.engine.jars import spark_submit

IMAGE_ENTRYPOINT = "local:///opt/featurekit/featurekit/entrypoint.py"


def local_submit_command(spec: dict[str, Any], jars: list[Path]) -> list[str]:
    """The local ``spark-submit`` command for a SparkApplication's ``spec``."""
    assert spec["mainApplicationFile"] == IMAGE_ENTRYPOINT
    entrypoint = Path(featurekit.__file__).parent / "entrypoint.py"
    assert entrypoint.parts[-2:] == tuple(IMAGE_ENTRYPOINT.split("/")[-2:])
    conf = dict(spec["sparkConf"])
    conf["spark.pyspark.python"] = conf["spark.pyspark.driver.python"] = sys.executable  # not the image's
    conf["spark.ui.enabled"] = "false"
    command = [str(spark_submit()), "--master", "local[2]", "--jars", ",".join(str(j) for j in jars)]
    for key, value in conf.items():
        command += ["--conf", f"{key}={value}"]
    return [*command, str(entrypoint), *spec["arguments"]]
