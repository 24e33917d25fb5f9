"""Each guardian's wiring matches the contract's who-hears-what table."""

from __future__ import annotations

import importlib

import pytest

from schemas.topics import SERVICES
from services.runtime.settings import SERVICE_PORTS


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_service_consumes_exactly_the_topics_the_contract_says_it_hears(name: str) -> None:
    app = importlib.import_module(f"services.{name}.app")
    assert app.guardian.name == name
    assert app.guardian.topics == sorted(SERVICES[name].receives)


def test_every_service_has_its_own_group_and_port() -> None:
    guardians = [importlib.import_module(f"services.{n}.app").guardian for n in SERVICES]
    assert len({g.group_id for g in guardians}) == len(SERVICES)
    assert sorted(SERVICE_PORTS) == sorted(SERVICES)
    assert len(set(SERVICE_PORTS.values())) == len(SERVICE_PORTS)
