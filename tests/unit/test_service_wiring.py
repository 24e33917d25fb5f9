"""Each guardian's wiring matches the contract's who-hears-what table; the dashboard, which
only hears, hears nothing that no guardian says."""

from __future__ import annotations

import importlib

import pytest

from schemas.topics import REGISTRY, SERVICES
from services.runtime.settings import SERVICE_PORTS

READ_MODELS = ("dashboard",)
"""Services that only hear: not in SERVICES (they say nothing), but deployed with a port."""


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_service_consumes_exactly_the_topics_the_contract_says_it_hears(name: str) -> None:
    app = importlib.import_module(f"services.{name}.app")
    assert app.guardian.name == name
    assert app.guardian.topics == sorted(SERVICES[name].receives)


@pytest.mark.parametrize("name", READ_MODELS)
def test_a_read_model_hears_only_what_guardians_say_and_no_command(name: str) -> None:
    app = importlib.import_module(f"services.{name}.app")
    assert app.guardian.name == name
    # change.submitted is CI's, the start of every release; everything else a guardian says.
    said = {topic for service in SERVICES.values() for topic in service.sends}
    said.add("change.submitted")
    assert app.guardian.topics, f"{name} hears nothing"
    assert set(app.guardian.topics) <= said, set(app.guardian.topics) - said
    # Other commands are for the guardian they address; a read model that verified them
    # would need every signer's key and would show requests, not what happened.
    signed = {t for t in app.guardian.topics if REGISTRY.topic(t).signed}
    assert signed <= {"change.submitted"}, signed


def test_every_service_has_its_own_group_and_port() -> None:
    names = [*SERVICES, *READ_MODELS]
    guardians = [importlib.import_module(f"services.{n}.app").guardian for n in names]
    assert len({g.group_id for g in guardians}) == len(names)
    assert sorted(SERVICE_PORTS) == sorted(names)
    assert len(set(SERVICE_PORTS.values())) == len(SERVICE_PORTS)
