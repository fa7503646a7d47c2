"""The Delta Lake jars (and an environment's ``spark.packages``), fetched once from Maven Central
into a project-local cache.

Spark's own resolver (Ivy, through ``spark-submit --packages``) does the fetching once,
at set-up; afterwards sessions get the cached files through ``spark.jars`` and never
touch the network. Jars that pyspark already ships are left out, so the classpath holds
exactly one copy of everything.
"""

from __future__ import annotations

import json
import re
import shutil
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from featurekit.config.versions import SPARK_VERSION, packages_of
from featurekit.errors import ConfigError, InfraError

MANIFEST = "manifest.json"


def spark_home() -> Path:
    """``SPARK_HOME`` when set (a Spark distribution, as in the job image), else pyspark's own."""
    if os.environ.get("SPARK_HOME"):
        return Path(os.environ["SPARK_HOME"])
    import pyspark  # local: keep `featurekit validate` free of it

    return Path(pyspark.__file__).parent


def hadoop_version() -> str | None:
    """The Hadoop version Spark was built with (its hadoop-client-api jar), if found."""
    for jar in (spark_home() / "jars").glob("hadoop-client-api-*.jar"):
        return jar.name.removeprefix("hadoop-client-api-").removesuffix(".jar")
    return None


def check_packages(packages: list[str]) -> None:
    """hadoop-aws and friends must be the exact Hadoop version of Spark's client jars."""
    hadoop = hadoop_version()
    for package in packages:
        group, artifact, version = package.split(":")
        if group == "org.apache.hadoop" and hadoop and version != hadoop:
            raise ConfigError.single(
                f"{package}: Spark {SPARK_VERSION} is built with Hadoop {hadoop}; use {group}:{artifact}:{hadoop} "
                "(Hadoop modules of another version fail at runtime with missing classes)",
                field="spark.packages",
            )


def spark_submit() -> Path:
    """The ``spark-submit`` inside the installed pyspark (it finds its own SPARK_HOME)."""
    return spark_home() / "bin" / "spark-submit"


def _artifact(jar_name: str) -> str:
    """``org.slf4j_slf4j-api-2.0.13.jar`` / ``slf4j-api-2.0.13.jar`` -> ``slf4j-api``."""
    stem = jar_name.removesuffix(".jar")
    if "_" in stem.split("-")[0]:
        stem = stem.split("_", 1)[1]
    return re.sub(r"-\d[\w.]*(-\d+)?$", "", stem)


def cached_jars(jars_dir: Path, packages: list[str] | None = None) -> list[Path] | None:
    """The cached jar files if the cache is complete for exactly ``packages``, else None."""
    manifest = jars_dir / MANIFEST
    if not manifest.is_file():
        return None
    try:
        data = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return None
    if data.get("packages") != (packages or packages_of([])):
        return None
    files = [jars_dir / name for name in data.get("jars", [])]
    return files if files and all(f.is_file() for f in files) else None


def fetch_jars(jars_dir: Path, packages: list[str] | None = None, repositories: list[str] | None = None) -> list[Path]:
    """Resolve the packages (Delta by default) with their dependencies and keep what Spark lacks."""
    packages = packages or packages_of([])
    check_packages(packages)
    provided = {_artifact(p.name) for p in (spark_home() / "jars").glob("*.jar")}
    jars_dir = jars_dir.resolve()
    jars_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ivy-", dir=jars_dir) as ivy:
        noop = Path(ivy) / "noop.py"
        noop.write_text("")
        command = [str(spark_submit()), "--packages", ",".join(packages), "--conf", f"spark.jars.ivy={ivy}"]
        if repositories:
            command += ["--repositories", ",".join(repositories)]
        # The no-op file runs on this interpreter (a Spark image may have no `python3` on PATH).
        env = {**os.environ, "SPARK_LOCAL_IP": os.environ.get("SPARK_LOCAL_IP", "127.0.0.1"),
               "PYSPARK_PYTHON": os.environ.get("PYSPARK_PYTHON", sys.executable)}
        done = subprocess.run([*command, str(noop)], capture_output=True, text=True, env=env)
        fetched = sorted((Path(ivy) / "jars").glob("*.jar"))
        if done.returncode != 0 or not fetched:
            tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
            raise InfraError(f"could not fetch {', '.join(packages)} from Maven Central:\n{tail}")
        kept = []
        for jar in fetched:
            if _artifact(jar.name) not in provided:
                shutil.copy2(jar, jars_dir / jar.name)
                kept.append(jar.name)
    for stale in set(jars_dir.glob("*.jar")) - {jars_dir / name for name in kept}:
        stale.unlink()
    (jars_dir / MANIFEST).write_text(json.dumps({"packages": packages, "jars": kept}, indent=2) + "\n")
    return [jars_dir / name for name in kept]


def ensure_jars(jars_dir: Path, packages: list[str] | None = None) -> list[Path]:
    """The cached jars, fetching them first if the cache is missing or stale."""
    return cached_jars(jars_dir, packages) or fetch_jars(jars_dir, packages)
