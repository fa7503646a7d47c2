"""Settings (conf/base merged with conf/<env>) and finding the project, on throwaway projects."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from featurekit.cli.present import flag
from featurekit.config import Project, find_project, load_settings
from featurekit.config.project import PROJECT_ENV
from featurekit.config.settings import REGISTRY_URL_ENV
from featurekit.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _no_project_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PROJECT_ENV, raising=False)


def make_project(root: Path, files: dict[str, str], envs: tuple[str, ...] = ("local",)) -> Project:
    """A project folder with conf/base, conf/<env> for each env, jobs/, and the given files."""
    (root / "jobs").mkdir(parents=True, exist_ok=True)
    (root / "conf" / "base").mkdir(parents=True, exist_ok=True)
    for env in envs:
        (root / "conf" / env).mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return Project(root.resolve())


def problems_of(project: Project, env: str = "local") -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(project, env)
    assert caught.value.exit_code == 2
    return [str(p) for p in caught.value.named(flag)]   # as the CLI shows them


# --------------------------------------------------------------------------- merging


def test_env_is_deep_merged_over_base_key_by_key(tmp_path: Path) -> None:
    project = make_project(tmp_path, {
        "conf/base/featurekit.yaml": """
            vars: {region: eu, bucket: base-bucket}
            spark:
              master: local[2]
              app_name: base-app
              conf: {spark.a: 1, spark.b: 2}
        """,
        "conf/local/featurekit.yaml": """
            vars: {bucket: local-bucket}
            spark:
              master: local[*]
              conf: {spark.b: 3, spark.c: true}
        """,
    })

    settings = load_settings(project, "local")

    assert settings.env == "local"
    assert settings.vars == {"region": "eu", "bucket": "local-bucket"}
    assert settings.spark.master == "local[*]"
    assert settings.spark.app_name == "base-app"
    assert settings.spark.conf == {"spark.a": "1", "spark.b": "3", "spark.c": "true"}


def test_files_of_one_folder_merge_in_name_order(tmp_path: Path) -> None:
    project = make_project(tmp_path, {
        "conf/base/a.yaml": "vars: {who: a, only_a: x}\n",
        "conf/base/b.yml": "vars: {who: b}\n",
        "conf/local/z.yaml": "spark: {app_name: z}\n",
    })

    settings = load_settings(project, "local")

    assert settings.vars == {"who": "b", "only_a": "x"}
    assert settings.spark.app_name == "z"


def test_each_environment_sees_only_its_own_folder(tmp_path: Path) -> None:
    project = make_project(tmp_path, {
        "conf/base/s.yaml": "spark: {master: 'local[1]'}\n",
        "conf/prod/s.yaml": "spark: {master: 'spark://cluster:7077'}\n",
    }, envs=("local", "prod"))

    assert load_settings(project, "local").spark.master == "local[1]"
    assert load_settings(project, "prod").spark.master == "spark://cluster:7077"
    assert load_settings(project, "prod").env == "prod"


def test_vars_may_use_other_vars_project_root_and_env(tmp_path: Path) -> None:
    project = make_project(tmp_path, {
        "conf/base/s.yaml": """
            vars:
              raw_root: ${data}/raw
              data: ${project_root}/data
              label: ${env}-${region}
              region: eu
              price: "$$5"
            spark:
              app_name: fk-${env}-${region}
            paths:
              runs: ${data}/runs
        """,
    }, envs=("local", "ci"))

    settings = load_settings(project, "ci")

    root = str(project.root)
    assert settings.vars["data"] == f"{root}/data"
    assert settings.vars["raw_root"] == f"{root}/data/raw"
    assert settings.vars["label"] == "ci-eu"
    assert settings.vars["price"] == "$5"
    assert settings.spark.app_name == "fk-ci-eu"
    assert settings.runs_dir == Path(f"{root}/data/runs")


def test_the_repository_settings_load() -> None:
    repo = REPO
    settings = load_settings(Project(repo), "local")

    assert settings.vars == {"raw_root": f"{repo}/data/raw", "lake_root": f"{repo}/data/lake"}
    assert settings.spark.conf["spark.sql.session.timeZone"] == "UTC"
    assert settings.spark.conf["spark.ui.enabled"] == "false"
    assert settings.runs_dir == repo / ".featurekit" / "runs"


def test_default_paths_are_filled_too(tmp_path: Path) -> None:
    project = make_project(tmp_path, {"conf/base/s.yaml": "vars: {a: b}\n"})

    settings = load_settings(project, "local")

    assert settings.runs_dir == project.root / ".featurekit" / "runs"


# --------------------------------------------------------------------------- problems


def test_unknown_environment_with_did_you_mean(tmp_path: Path) -> None:
    project = make_project(tmp_path, {"conf/base/s.yaml": "vars: {}\n"}, envs=("local", "prod"))

    assert problems_of(project, "locl") == [
        "conf --env: unknown environment 'locl' — did you mean 'local'? (environments: local, prod)"
    ]
    assert problems_of(project, "staging") == ["conf --env: unknown environment 'staging' (environments: local, prod)"]


def test_unknown_variable_is_located_at_its_file_and_line(tmp_path: Path) -> None:
    project = make_project(tmp_path, {
        "conf/base/s.yaml": """
            vars:
              data: /data
              raw: ${dta}/raw
        """,
        "conf/local/s.yaml": """
            # the app name
            spark:
              app_name: fk-${nope}
        """,
    })

    assert problems_of(project) == [
        "conf/base/s.yaml:3:8 vars.raw: unknown variable ${dta} — did you mean 'data'?",
        "conf/local/s.yaml:3:13 spark.app_name: unknown variable ${nope}",
    ]


def test_unknown_key_is_located_at_its_file_and_line(tmp_path: Path) -> None:
    project = make_project(tmp_path, {
        "conf/base/s.yaml": "vars: {a: b}\n",
        "conf/local/s.yaml": """
            spark:
              mastr: local[2]
            sprak: {}
        """,
    })

    assert problems_of(project) == [
        "conf/local/s.yaml:2:3 spark.mastr: unknown key 'mastr' — did you mean 'master'?",
        "conf/local/s.yaml:3:1 sprak: unknown key 'sprak' — did you mean 'spark'?",
    ]


def test_bad_value_is_located_at_the_file_that_set_it(tmp_path: Path) -> None:
    project = make_project(tmp_path, {
        "conf/base/s.yaml": "spark: {log_level: WARN}\n",
        "conf/local/s.yaml": "spark:\n  log_level: LOUD\n",
    })

    assert problems_of(project) == [
        "conf/local/s.yaml:2:14 spark.log_level: expected one of 'ERROR', 'WARN', 'INFO', 'DEBUG'; got 'LOUD'"
    ]


def test_registry_settings_default_to_the_embedded_registry_and_the_env_var_wins(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(REGISTRY_URL_ENV, raising=False)
    project = make_project(tmp_path, {"conf/local/s.yaml": "registry:\n  enabled: true\n  token_env: MR_TOKEN\n"})

    registry = load_settings(project, "local").registry

    assert (registry.url, registry.enabled, registry.token_env) == ("http://127.0.0.1:8080", True, "MR_TOKEN")
    assert registry.outbox == f"{project.root}/.featurekit/lineage-outbox"
    assert registry.effective_url == "http://127.0.0.1:8080"
    monkeypatch.setenv(REGISTRY_URL_ENV, "https://registry.example.com/")
    assert registry.effective_url == "https://registry.example.com"


def test_bad_registry_settings_are_located(tmp_path: Path) -> None:
    project = make_project(tmp_path, {
        "conf/base/s.yaml": "registry:\n  url: registry:8080\n  retries: -1\n  tiemout_s: 3\n",
    })

    assert problems_of(project) == [
        "conf/base/s.yaml:2:8 registry.url: expected an http:// or https:// URL like http://127.0.0.1:8080; "
        "got 'registry:8080'",
        "conf/base/s.yaml:3:12 registry.retries: expected at least 0; got -1",
        "conf/base/s.yaml:4:3 registry.tiemout_s: unknown key 'tiemout_s' — did you mean 'timeout_s'?",
    ]


def test_concurrency_retries_default_and_bounds(tmp_path: Path) -> None:
    assert load_settings(make_project(tmp_path / "default", {}), "local").concurrency.retries == 2
    project = make_project(tmp_path / "bad", {"conf/local/s.yaml": "concurrency:\n  retries: 11\n  retry: 1\n"})

    assert problems_of(project) == [
        "conf/local/s.yaml:2:12 concurrency.retries: expected at most 10; got 11",
        "conf/local/s.yaml:3:3 concurrency.retry: unknown key 'retry' — did you mean 'retries'?",
    ]


def test_unknown_key_in_base_is_located_in_base_when_env_overrides_a_sibling(tmp_path: Path) -> None:
    project = make_project(tmp_path, {
        "conf/base/s.yaml": "spark:\n  mastr: local[2]\n",
        "conf/local/s.yaml": "spark:\n  app_name: x\n",
    })

    assert problems_of(project) == ["conf/base/s.yaml:2:3 spark.mastr: unknown key 'mastr' — did you mean 'master'?"]


def test_cycle_between_vars_is_reported(tmp_path: Path) -> None:
    project = make_project(tmp_path, {"conf/base/s.yaml": "vars:\n  a: ${b}/x\n  b: ${a}/y\n"})

    problems = problems_of(project)

    assert any("vars.a" in p and "cycle" in p for p in problems)


def test_yaml_errors_in_conf_are_reported_with_their_file(tmp_path: Path) -> None:
    project = make_project(tmp_path, {
        "conf/base/s.yaml": "spark: {master: local\n",
        "conf/local/s.yaml": "- a list\n",
    })

    problems = problems_of(project)

    assert len(problems) == 2
    assert problems[0].startswith("conf/base/s.yaml:2:1: YAML syntax error: ")
    assert problems[1] == "conf/local/s.yaml:1:1: expected a mapping of settings"


# --------------------------------------------------------------------------- finding the project


def test_find_project_walks_upwards_from_a_nested_folder(tmp_path: Path) -> None:
    project = make_project(tmp_path / "proj", {})
    nested = project.root / "jobs" / "deep" / "deeper"
    nested.mkdir(parents=True)

    assert find_project(nested) == project
    assert find_project(project.root) == project


def test_find_project_uses_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = make_project(tmp_path / "proj", {})
    (project.root / "notebooks").mkdir()
    monkeypatch.chdir(project.root / "notebooks")

    assert find_project() == project


def test_find_project_fails_clearly_outside_a_project(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    (outside / "jobs").mkdir(parents=True)  # jobs/ alone does not make a project

    with pytest.raises(ConfigError) as caught:
        find_project(outside)

    [problem] = caught.value.problems
    assert problem.file == str(outside.resolve())
    assert problem.message == (
        f"no featurekit project here: no folder from {outside.resolve()} upwards has both conf/ and jobs/ "
        f"(see the README's project layout, or set {PROJECT_ENV})"
    )


def test_project_env_var_overrides_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chosen = make_project(tmp_path / "chosen", {})
    other = make_project(tmp_path / "other", {})
    monkeypatch.setenv(PROJECT_ENV, str(chosen.root))

    assert find_project(other.root) == chosen


def test_project_env_var_naming_a_non_project_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PROJECT_ENV, str(tmp_path))

    with pytest.raises(ConfigError) as caught:
        find_project(tmp_path)

    assert [str(p) for p in caught.value.problems] == [
        f"{PROJECT_ENV}: {PROJECT_ENV}={tmp_path} has no conf/ and jobs/ folders"
    ]


# --------------------------------------------------------------------------- jobs of a project


def test_job_path_by_name_and_by_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = make_project(tmp_path, {
        "jobs/driver_profile.yaml": "name: driver_profile\n",
        "jobs/trips.yml": "name: trips\n",
        "elsewhere/adhoc.yaml": "name: adhoc\n",
    })
    monkeypatch.chdir(project.root)

    assert project.job_path("driver_profile") == project.root / "jobs" / "driver_profile.yaml"
    assert project.job_path("trips") == project.root / "jobs" / "trips.yml"
    assert project.job_path("jobs/driver_profile.yaml") == project.root / "jobs" / "driver_profile.yaml"
    assert project.job_path("elsewhere/adhoc.yaml") == project.root / "elsewhere" / "adhoc.yaml"
    assert project.job_path(str(project.root / "elsewhere" / "adhoc.yaml")) == project.root / "elsewhere" / "adhoc.yaml"
    assert [p.name for p in project.job_files()] == ["driver_profile.yaml", "trips.yml"]


def test_missing_job_by_name_suggests_a_close_one(tmp_path: Path) -> None:
    project = make_project(tmp_path, {
        "jobs/driver_profile.yaml": "name: driver_profile\n",
        "jobs/driver_hourly_stats.yaml": "name: driver_hourly_stats\n",
    })

    with pytest.raises(ConfigError) as caught:
        project.job_path("driver_profil")

    assert [str(p) for p in caught.value.problems] == [
        "jobs: no job named 'driver_profil' in jobs/ — did you mean 'driver_profile'? "
        "(jobs: driver_hourly_stats, driver_profile)"
    ]


def test_missing_job_file_by_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = make_project(tmp_path, {})
    monkeypatch.chdir(project.root)

    with pytest.raises(ConfigError) as caught:
        project.job_path("jobs/nothing.yaml")

    assert [str(p) for p in caught.value.problems] == ["jobs/nothing.yaml: job file not found: jobs/nothing.yaml"]


def test_environments_and_shown_paths(tmp_path: Path) -> None:
    project = make_project(tmp_path, {}, envs=("local", "prod", "ci"))

    assert project.environments() == ["ci", "local", "prod"]
    assert project.shown(project.root / "jobs" / "a.yaml") == "jobs/a.yaml"
    assert project.shown(tmp_path.parent / "x.yaml") == str(tmp_path.parent / "x.yaml")


def test_delta_rs_gets_the_s3a_settings_spark_gets() -> None:
    from featurekit.config.storage import delta_rs_options

    assert delta_rs_options({}) == {}
    assert delta_rs_options({
        "spark.hadoop.fs.s3a.endpoint": "http://minio.data.svc:9000",
        "spark.hadoop.fs.s3a.path.style.access": "true",
        "spark.hadoop.fs.s3a.endpoint.region": "eu-west-1",
        "spark.sql.shuffle.partitions": "8",
    }) == {"AWS_ENDPOINT_URL": "http://minio.data.svc:9000", "AWS_ALLOW_HTTP": "true",
           "AWS_VIRTUAL_HOSTED_STYLE_REQUEST": "false", "AWS_REGION": "eu-west-1"}
    # s3a takes a bare host as https; virtual-hosted style when path style is off
    assert delta_rs_options({"spark.hadoop.fs.s3a.endpoint": "s3.eu-west-1.amazonaws.com",
                             "spark.hadoop.fs.s3a.path.style.access": "false"}) == {
        "AWS_ENDPOINT_URL": "https://s3.eu-west-1.amazonaws.com", "AWS_VIRTUAL_HOSTED_STYLE_REQUEST": "true"}
