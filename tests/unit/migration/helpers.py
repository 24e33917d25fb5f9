"""Helpers for the migration analysis tests: lint SQL text, list the rules that fired."""

from __future__ import annotations

from services.migration.domain.change_analysis import AnalysisOptions, analyse_migrations
from services.migration.domain.findings import Finding
from services.migration.domain.migration_files import Migration


def lint_sql(*files: str, pg_version: int = 18, transaction_per_file: bool = True,
             history: tuple[str, ...] = ()) -> list[Finding]:
    """Analyse SQL files as one change (file-1.sql, file-2.sql, ...), after `history`."""
    options = AnalysisOptions(pg_version=pg_version, transaction_per_file=transaction_per_file,
                              report_missing_down=False)
    migrations = [Migration(f"file-{i}.sql", sql) for i, sql in enumerate(files, 1)]
    past = [Migration(f"past-{i}.sql", sql) for i, sql in enumerate(history, 1)]
    return analyse_migrations(migrations, options, history=past)


def rules(*files: str, pg_version: int = 18, transaction_per_file: bool = True,
          history: tuple[str, ...] = ()) -> set[str]:
    return {f.rule for f in lint_sql(*files, pg_version=pg_version, history=history,
                                     transaction_per_file=transaction_per_file)}
