# featurekit: `make demo` and `make test` do everything on a fresh machine (set-up included).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
FK := $(VENV)/bin/featurekit
INSTALLED := $(VENV)/.installed
JARS := .featurekit/jars/manifest.json
ROWS ?= 200000
PYTEST_ARGS ?=

.PHONY: setup s3-deps demo test unit bench screenshots lint clean

setup: $(INSTALLED) $(JARS)  ## venv + package + Delta jars (the only network step)

$(INSTALLED): pyproject.toml
	@command -v java >/dev/null || { echo "Java 17 is needed (e.g. apt-get install openjdk-17-jdk-headless)"; exit 1; }
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "featurekit needs Python 3.11; set PYTHON=python3.11"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

$(JARS): $(INSTALLED)
	$(FK) setup
	@command -v redis-server >/dev/null || echo "note: redis-server is not installed. The default online store is SQLite;" \
	  "for the Redis one (and its tests): apt-get install redis-server"

# For the s3a tests (tests/e2e/test_s3a.py; .ci/run makes them): a MinIO server built from the Go
# module proxy (~3 min, caches removed afterwards) and the k8s env's jars (Delta + hadoop-aws with
# the AWS SDK bundle, ~690 MB). Without them those tests skip on a laptop and fail under CI.
MINIO_VERSION ?= v0.0.0-20260212201848-7aac2a2c5b7c
MINIO := .featurekit/tools/minio
K8S_JARS := .featurekit/jars-k8s/manifest.json

s3-deps: $(MINIO) $(K8S_JARS)  ## MinIO + the k8s env's jars, for the s3a tests

$(MINIO):
	@command -v go >/dev/null || { echo "Go is needed to build MinIO for the s3a tests (https://go.dev/dl/)"; exit 1; }
	@mkdir -p $(dir $(MINIO))
	tmp=$$(mktemp -d); trap 'chmod -R u+w "$$tmp"; rm -rf "$$tmp"' EXIT; \
	GOBIN=$(abspath $(dir $(MINIO))) GOPATH=$$tmp/go GOMODCACHE=$$tmp/mod GOCACHE=$$tmp/cache GOFLAGS=-mod=mod CGO_ENABLED=0 \
	  go install -trimpath -ldflags="-s -w" github.com/minio/minio@$(MINIO_VERSION)

$(K8S_JARS): $(INSTALLED)
	$(FK) setup --env k8s

# The demo data covers the two weeks before 2026-01-15 (featurekit.demo.generate); its first
# arrival the day after. The hourly job is incremental: each run ends where the data does.
DATA_END ?= 2026-01-15T00:00:00Z
ARRIVAL_END ?= 2026-01-16T00:00:00Z
DEMO_WINDOW ?= --start 2026-01-01T00:00:00Z --end $(ARRIVAL_END)
REGISTRY_PORT ?= 8080
REGISTRY_URL := http://127.0.0.1:$(REGISTRY_PORT)
# The demo model's KServe predictor and featurekit's transformer in front of it (README "Running on Kubeflow").
PREDICTOR_PORT ?= 8091
TRANSFORMER_PORT ?= 8092
MODEL_DIR := data/models/driver-eta/demo

demo: setup  ## raw data -> jobs -> Delta -> feast apply -> materialize -> online lookups -> training set -> lineage
	test -f data/raw/_manifest.json || $(FK) generate-demo-data --rows $(ROWS)
	$(FK) validate
	$(FK) plan driver_hourly_stats
	$(FK) run driver_profile
	$(FK) run driver_hourly_stats --end $(DATA_END)          # first run: everything up to the data's end
	$(FK) generate-demo-data --arrival 1                      # a day of new trips lands (some late; some drivers stopped)
	$(FK) run driver_hourly_stats --end $(ARRIVAL_END)       # second run: only (watermark - 2d lookback, end]
	$(FK) show driver_hourly_stats --limit 5
	$(FK) runs
	$(FK) render sparkapp --all --env k8s -o .featurekit/manifests/  # the same jobs for the Spark operator (README "Running on Kubernetes")
	$(FK) feast apply
	@mkdir -p .featurekit
	$(FK) registry serve --port $(REGISTRY_PORT) > .featurekit/registry.log 2>&1 & pids=$$!; trap 'kill $$pids 2>/dev/null' EXIT; \
	ready() { for _ in $$(seq 300); do $(PY) -c "import httpx; httpx.get('$$1', timeout=1).raise_for_status()" 2>/dev/null && return 0; sleep 0.2; done; echo "$$1 did not answer" >&2; return 1; }; \
	ready $(REGISTRY_URL)/api/model_registry/v1/registered_models; \
	export FEATUREKIT_REGISTRY_URL=$(REGISTRY_URL); set -e; \
	$(FK) materialize $(DEMO_WINDOW); \
	echo "driver 100001 stopped driving on $(DATA_END): its windows have emptied (expire: true)"; \
	$(FK) online driver_id=100001 driver_id=100002 driver_id=999 --service driver_hourly_stats; \
	$(FK) online driver_id=100001 --view driver_profile; \
	$(FK) training-set --service driver_activity $(DEMO_WINDOW) --out data/lake/training/driver_activity; \
	$(FK) lineage flush; \
	$(FK) lineage link --model driver-eta --version demo --service driver_activity; \
	$(FK) lineage show --model driver-eta --version demo; \
	$(FK) lineage show --model driver-eta --version demo --format mermaid --out .featurekit/lineage.mmd; \
	$(PY) -m featurekit.demo.model train --training-set data/lake/training/driver_activity --out $(MODEL_DIR); \
	$(FK) lineage register-model --model driver-eta --version demo --uri file://$(abspath $(MODEL_DIR)) --format featurekit-demo-linear:1; \
	$(FK) render pipeline --env k8s -o .featurekit/manifests/pipeline.yaml --rbac .featurekit/manifests/pipeline-rbac.yaml; \
	FEATUREKIT_REGISTRY_TOKEN=not-checked-by-the-embedded-registry \
	  $(FK) render inferenceservice --model driver-eta --version demo --env k8s -o .featurekit/manifests/inferenceservice.yaml; \
	$(PY) -m featurekit.demo.model serve --model_dir $(MODEL_DIR) --model_name driver-eta --http_port $(PREDICTOR_PORT) \
	  > .featurekit/predictor.log 2>&1 & pids="$$pids $$!"; \
	$(FK) transformer --model driver-eta --version demo --model_name driver-eta --predictor_host 127.0.0.1:$(PREDICTOR_PORT) \
	  --http_port $(TRANSFORMER_PORT) > .featurekit/transformer.log 2>&1 & pids="$$pids $$!"; \
	ready http://127.0.0.1:$(PREDICTOR_PORT)/v1/models/driver-eta; ready http://127.0.0.1:$(TRANSFORMER_PORT)/v1/models/driver-eta; \
	echo "one request through the transformer: it adds these online features of driver_activity to each instance (driver 999 is unknown):"; \
	$(FK) online driver_id=100002 driver_id=999 --service driver_activity; \
	$(PY) -c "import httpx, json; r = httpx.post('http://127.0.0.1:$(TRANSFORMER_PORT)/v1/models/driver-eta:predict', \
	  json={'instances': [{'driver_id': 100002}, {'driver_id': 999}]}, timeout=30); r.raise_for_status(); print(json.dumps(r.json()))"
	@echo
	@echo "Browse what the demo made (feature views, jobs, runs, lineage) in the web catalog:"
	@echo "  $(FK) ui --env local        then open http://127.0.0.1:8888/"
	@echo "  (the lineage pages read the Model Registry: run $(FK) registry serve --port $(REGISTRY_PORT) beside it)"

test: setup  ## every tier: unit, integration (Spark + Delta), e2e (CLI, spark-submit)
	$(PY) -m pytest $(PYTEST_ARGS) tests

unit: setup
	$(PY) -m pytest -q tests/unit

bench: setup  ## benchmarks/ (see docs/benchmarks.md)
	$(PY) benchmarks/prep_job.py

# The README's picture of `featurekit ui` (docs/images/), from the ui tests' small project (no Spark),
# taken in the browser tests' headless Chromium (docs/ui.md "Browser tests").
screenshots: $(INSTALLED)  ## docs/images/ui-*.png again
	$(PY) -m tests.browser.screenshots --out docs/images

lint: setup
	$(VENV)/bin/lint-imports

clean:
	rm -rf data .featurekit/runs spark-warehouse feature_repo/data .featurekit/registry.db* .featurekit/lineage-outbox
