from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def bootstrap() -> str:
    value = os.environ.get("GUARDIANS_KAFKA_BOOTSTRAP")
    if not value:
        pytest.fail("GUARDIANS_KAFKA_BOOTSTRAP is not set: run `make stack-up` and "
                    "`source .cache/stack.env` (make test does both)")
    return value


@pytest.fixture(scope="session")
def database_url() -> str:
    value = os.environ.get("GUARDIANS_DATABASE_URL")
    if not value:
        pytest.fail("GUARDIANS_DATABASE_URL is not set: run `make stack-up` and "
                    "`source .cache/stack.env` (make test does both)")
    return value
