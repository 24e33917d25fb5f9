# One image for all five guardians and the topic creator; compose.yaml picks the process with
# its `command`, e.g. ["python", "-m", "services.deploy"].
#
#   docker build -t infra-guardians:local .
#   docker run --rm infra-guardians:local                      # prints usage
#   docker run --rm -e GUARDIANS_KAFKA_BOOTSTRAP=... -e GUARDIANS_DATABASE_URL=... \
#       infra-guardians:local python -m services.deploy

# The native SQL analysis (native/, Rust, a pyo3 module), built for CPython 3.11 (Debian
# bookworm's, the base of python:3.11-slim). Without it the guardians use the Python analysis,
# which finds the same, slower.
FROM rust:1-slim-bookworm AS native
RUN apt-get update && apt-get install -y --no-install-recommends python3 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /native
COPY native/ ./
RUN PYO3_PYTHON=python3 cargo build --release --locked \
    && cp target/release/lib_native.so /_native.so

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GUARDIANS_HTTP_HOST=0.0.0.0

WORKDIR /app

# The pinned dependencies first, in their own layer: a code change does not reinstall them.
COPY requirements.lock ./
RUN pip install -r requirements.lock

# Then the project itself (the packages pyproject.toml's [tool.setuptools.packages.find]
# includes). The source stays in /app, the working directory, so `python -m services.<name>`
# runs exactly this tree, SQL migrations included, as `make run` does from the repo.
COPY pyproject.toml ./
COPY schemas/ schemas/
COPY services/ services/
COPY cli/ cli/
COPY demo/ demo/
COPY --from=native /_native.so /tmp/_native.so
RUN mv /tmp/_native.so "services/migration/domain/_native$(python -c \
        'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')" \
    && pip install --no-deps . \
    && rm -rf build ./*.egg-info

# Never run as root.
RUN useradd --create-home --uid 10001 --user-group guardian
USER guardian

# No service is the default: say how to choose one.
CMD ["python", "-c", "from services.runtime.settings import SERVICE_PORTS as s; raise SystemExit('usage: python -m services.<name>, name one of: ' + ', '.join(s) + '; python -m services.runtime.topics creates the Kafka topics first')"]
