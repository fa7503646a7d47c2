"""The Feast side without a JVM: type mapping, the rendered store file, entity parsing."""

from __future__ import annotations

from pathlib import Path

import pytest

from featurekit.config import Project, load_settings
from featurekit.errors import ConfigError
from featurekit.feast.definitions import feast_type
from featurekit.feast.store import render, store_config
from featurekit.online import parse_entities


@pytest.mark.parametrize(("delta", "feast"), [
    ("long", "Int64"), ("integer", "Int32"), ("short", "Int32"), ("double", "Float64"), ("float", "Float32"),
    ("string", "String"), ("boolean", "Bool"), ("timestamp", "UnixTimestamp"), ("binary", "Bytes"),
    ({"type": "array", "elementType": "double", "containsNull": True}, "Array(Float64)"),
    ("date", None), ("decimal(10,2)", None),
    ({"type": "struct", "fields": []}, None),
    ({"type": "array", "elementType": {"type": "struct", "fields": []}, "containsNull": True}, None),
])
def test_delta_types_map_to_feast_types(delta: object, feast: str | None) -> None:
    assert feast_type(delta) == feast


def test_store_file_paths_inside_the_project_are_relative(make_project, tmp_path: Path) -> None:
    root = make_project()
    project = Project(root)
    settings = load_settings(project, "local")
    conf = {"spark.jars": f"{root}/.featurekit/jars/a.jar,/opt/jars/b.jar",
            "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
            "spark.driver.extraJavaOptions": "-Dlog4j2.configurationFile=file:/x"}
    config = store_config(project, settings, conf)
    assert config["registry"] == {"registry_type": "file", "path": "data/registry.db"}
    assert config["online_store"] == {"type": "sqlite", "path": "data/online.db"}
    spark = config["offline_store"]["spark_conf"]
    assert spark["spark.jars"] == "../.featurekit/jars/a.jar,/opt/jars/b.jar"
    assert "spark.driver.extraJavaOptions" not in spark  # per process, names this machine
    path = render(project, settings, conf)
    assert path == root / "feature_repo" / "feature_store.yaml"
    assert str(root) not in path.read_text()


def test_the_redis_environment_renders_a_redis_online_store(make_project) -> None:
    project = Project(make_project())
    config = store_config(project, load_settings(project, "local-redis"), {})
    assert config["online_store"] == {"type": "redis", "connection_string": "127.0.0.1:6379"}


def test_feast_rejects_a_bad_online_store_with_a_config_error(make_project) -> None:
    root = make_project()
    (root / "conf" / "local" / "feast.yaml").write_text("feast:\n  online_store: {type: nosuchstore}\n")
    project = Project(root)
    with pytest.raises(ConfigError) as info:
        render(project, load_settings(project, "local"), {})
    assert "Feast rejects these settings" in str(info.value)
    assert not (root / "feature_repo" / "feature_store.yaml").exists()


def test_entities_are_parsed_and_typed_from_the_join_keys() -> None:
    keys = {"driver_id": "INT64", "city": "STRING"}
    assert parse_entities(["driver_id=7,city=Paris", "city=Oslo,driver_id=8"], keys) == \
        {"driver_id": [7, 8], "city": ["Paris", "Oslo"]}
    with pytest.raises(ConfigError, match="lacks join key"):
        parse_entities(["driver_id=7"], keys)
    with pytest.raises(ConfigError, match="driver_id is INT64; got 'x'"):
        parse_entities(["driver_id=x,city=a"], keys)
    with pytest.raises(ConfigError, match="did you mean 'driver_id'"):
        parse_entities(["driverid=7,city=a"], keys)
