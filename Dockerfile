# syntax=docker/dockerfile:1
# The job image the Kubeflow Spark operator runs (`featurekit render sparkapp`):
#   - Apache Spark 4.2.0, the version pyproject.toml pins for pyspark, from Spark's own image
#     (its /opt/entrypoint.sh is what Spark on Kubernetes starts driver and executor pods with);
#   - Python 3.11 (what featurekit supports) in a venv, with featurekit installed, using the
#     image's own pyspark so one Spark is on the path;
#   - the Delta and s3a jars baked in by `featurekit setup` at build time (README "Running on
#     Kubernetes" says why they are baked rather than fetched by every run);
#   - the project's jobs/, conf/ and feature_repo/ at /opt/featurekit (kubernetes.project_dir).
# Build from the project folder:  docker build -t registry.example.com/featurekit-jobs:0.1.0 .
ARG SPARK_IMAGE=apache/spark:4.2.0-scala2.13-java17-ubuntu
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.9

FROM ${UV_IMAGE} AS uv

FROM ${SPARK_IMAGE}
# The environment whose spark.packages are baked in (conf/<ENV>).
ARG ENV=k8s
USER root
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_PYTHON_INSTALL_DIR=/opt/python \
    UV_LINK_MODE=copy \
    UV_COMPILE_BYTECODE=1 \
    UV_NO_CACHE=1 \
    SPARK_HOME=/opt/spark

WORKDIR /opt/featurekit
COPY pyproject.toml README.md LICENSE ./
COPY featurekit ./featurekit
# Python 3.11 from uv (Spark's Ubuntu image has another), then featurekit and its dependencies.
# pip's pyspark 4.2.0 (a second copy of Spark's jars) is swapped for the image's Spark 4.2.0.
RUN set -eux; \
    uv venv --python 3.11 /opt/featurekit/venv; \
    uv pip install --python /opt/featurekit/venv/bin/python "/opt/featurekit[s3]"; \
    uv pip uninstall --python /opt/featurekit/venv/bin/python pyspark; \
    site="$(/opt/featurekit/venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"; \
    { echo "$SPARK_HOME/python"; ls "$SPARK_HOME"/python/lib/py4j-*-src.zip; } > "$site/spark.pth"; \
    /opt/featurekit/venv/bin/python -c "import pyspark, featurekit.cli; assert pyspark.__version__ == '4.2.0', pyspark.__version__"

ENV FEATUREKIT_PROJECT=/opt/featurekit \
    PYSPARK_PYTHON=/opt/featurekit/venv/bin/python \
    PYSPARK_DRIVER_PYTHON=/opt/featurekit/venv/bin/python \
    PATH=/opt/featurekit/venv/bin:$PATH

COPY conf ./conf
COPY jobs ./jobs
COPY feature_repo ./feature_repo
# Delta plus the environment's spark.packages (hadoop-aws and the AWS SDK), resolved once by
# Spark's Ivy and put on Spark's classpath: no run resolves anything from Maven.
RUN set -eux; \
    FEATUREKIT_JARS_DIR=/tmp/featurekit-jars featurekit setup --env "$ENV"; \
    cp /tmp/featurekit-jars/*.jar "$SPARK_HOME/jars/"; \
    rm -rf /tmp/featurekit-jars /root/.ivy2 /root/.ivy2.5.2; \
    mkdir -p /opt/featurekit/.featurekit; \
    chown -R spark:spark /opt/featurekit/.featurekit

WORKDIR /opt/spark/work-dir
USER spark
