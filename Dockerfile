# One image for all five guardians and the topic creator; compose.yaml picks the process with
# its `command`, e.g. ["python", "-m", "services.deploy"].
#
#   docker build -t infra-guardians:local .
#   docker run --rm infra-guardians:local                      # prints usage
#   docker run --rm -e GUARDIANS_KAFKA_BOOTSTRAP=... -e GUARDIANS_DATABASE_URL=... \
#       infra-guardians:local python -m services.deploy
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
RUN pip install --no-deps . \
    && rm -rf build ./*.egg-info

# Never run as root.
RUN useradd --create-home --uid 10001 --user-group guardian
USER guardian

# No service is the default: say how to choose one.
CMD ["python", "-c", "from services.runtime.settings import SERVICE_PORTS as s; raise SystemExit('usage: python -m services.<name>, name one of: ' + ', '.join(s) + '; python -m services.runtime.topics creates the Kafka topics first')"]
