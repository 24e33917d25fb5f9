"""Terraform plans (`terraform show -json plan.out`): what the change destroys.

A `delete` action, alone or in a replacement (`["delete", "create"]` or
`["create", "delete"]`), destroys the resource: DATA_LOSS when its type holds state
(databases, volumes, buckets: configurable glob patterns), INCOMPATIBLE otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from fnmatch import fnmatchcase
from typing import Protocol

from schemas.events.enums import ChangeKind, Severity
from services.migration.domain.findings import Effect, Finding

STATEFUL_RESOURCE_TYPES = (
    "aws_db_instance", "aws_rds_*", "aws_dynamodb_table", "aws_s3_bucket", "aws_ebs_volume",
    "aws_efs_file_system", "aws_elasticache_*", "aws_docdb_*", "aws_neptune_*",
    "aws_redshift_cluster", "aws_opensearch_domain", "aws_elasticsearch_domain",
    "google_sql_*", "google_storage_bucket", "google_compute_disk", "google_bigquery_*",
    "google_spanner_*", "azurerm_*_database*", "azurerm_storage_*", "azurerm_managed_disk",
    "*_volume*", "*_bucket", "*_database", "*_database_instance", "*_disk",
)


class InfrastructurePlanLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def content(self) -> str: ...


def _malformed(plan: InfrastructurePlanLike, why: str) -> Finding:
    return Finding(
        rule="infra-plan-malformed", severity=Severity.ERROR, effect=Effect.CANNOT_RUN,
        kind=ChangeKind.INFRASTRUCTURE, file=plan.name,
        message=f"infrastructure plan {plan.name!r} is not a Terraform JSON plan: {why}.",
        fix="Submit the output of `terraform show -json plan.out` verbatim.")


def analyse_infrastructure_plans(
    plans: Iterable[InfrastructurePlanLike],
    stateful: Sequence[str] = STATEFUL_RESOURCE_TYPES,
) -> list[Finding]:
    findings: list[Finding] = []
    for plan in plans:
        try:
            document = json.loads(plan.content)
        except json.JSONDecodeError as error:
            findings.append(_malformed(plan, f"invalid JSON at line {error.lineno} column "
                                             f"{error.colno} ({error.msg})"))
            continue
        changes = document.get("resource_changes") if isinstance(document, dict) else None
        if not isinstance(changes, list):
            findings.append(_malformed(plan, "it has no `resource_changes` list"))
            continue
        for entry in changes:
            change = entry.get("change") if isinstance(entry, dict) else None
            actions = change.get("actions") if isinstance(change, dict) else None
            if not isinstance(actions, list):
                findings.append(_malformed(plan, f"a resource change without `change.actions`"
                                                 f" ({entry!r:.80})"))
                continue
            if "delete" not in actions:
                continue
            findings.append(_destroyed(plan, entry, actions, stateful))
    return findings


def _destroyed(plan: InfrastructurePlanLike, entry: dict[str, object], actions: list[object],
               stateful: Sequence[str]) -> Finding:
    kind = str(entry.get("type", "?"))
    address = str(entry.get("address", kind))
    keeps_state = any(fnmatchcase(kind, pattern) for pattern in stateful)
    replaced = "create" in actions
    verb = "replaces (destroys, then re-creates)" if replaced else "destroys"
    if actions and actions[0] == "create":
        verb = "replaces (creates the new one first, then destroys)"
    consequence = ("its data goes with it" if keeps_state else
                   "whatever uses it loses it" + (" while it is re-created" if replaced else ""))
    return Finding(
        rule="infra-resource-destroyed", severity=Severity.ERROR if keeps_state else
        Severity.WARNING, effect=Effect.DATA_LOSS if keeps_state else Effect.INCOMPATIBLE,
        kind=ChangeKind.INFRASTRUCTURE, file=plan.name, target=address,
        message=f"the plan {verb} {address} ({kind}): {consequence}.",
        fix=("Back it up and snapshot first; set lifecycle { prevent_destroy = true }; find "
             "which argument forces the replacement and change it in place if possible.")
        if keeps_state else "Check what depends on it, and that a replacement keeps its "
                            "address or endpoint (create_before_destroy).")
