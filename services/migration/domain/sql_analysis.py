"""The SQL analysis: the migrations of one change, statement by statement, in order.

Each statement goes to the handler for its parse-node type (the rule modules' `HANDLERS`),
which reports findings and the locks the statement requests through a `StatementReport`.
After the handler, the locks are checked against the timeouts in effect. The analysis owns
the state (see change_state); the handlers only read and update it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from schemas.events.enums import LockMode, Severity
from services.migration.domain import (
    constraint_rules,
    data_rules,
    index_rules,
    object_rules,
    session_rules,
    table_rules,
)
from services.migration.domain.change_state import (
    ChangeScope,
    Namespace,
    SchemaKnowledge,
    Session,
    Transaction,
)
from services.migration.domain.findings import Effect, Finding
from services.migration.domain.rule_catalog import UNSUPPRESSIBLE, canonical, rule
from services.migration.domain.sql_nodes import Node, ObjectName
from services.migration.domain.sql_source import (
    SourceStatement,
    long_identifiers,
    read_script,
)
from services.migration.domain.suppressions import read_suppressions

_WRITE_BLOCKING = frozenset({LockMode.SHARE, LockMode.SHARE_ROW_EXCLUSIVE, LockMode.EXCLUSIVE,
                             LockMode.ACCESS_EXCLUSIVE})
_LOCK_ORDER = list(LockMode)
_UNDER_LOCK_HARMLESS = frozenset({"TransactionStmt", "VariableSetStmt"})
"""Statements that take no time: run while a lock is held, they do not lengthen the hold."""


@dataclass(frozen=True)
class SqlOptions:
    pg_version: int = 18
    """The target's PostgreSQL major version."""
    transaction_per_file: bool = True
    """The migration runner wraps each file in a transaction (Diesel, Flyway, sqlx, Rails)."""


@dataclass(frozen=True)
class SqlFile:
    name: str
    sql: str
    rollback: bool = False
    """A down script: its findings are reported but only grade as a rollback defect."""


@dataclass(frozen=True)
class LockRequest:
    target: ObjectName
    mode: LockMode
    preexisting: bool


@dataclass
class StatementReport:
    """What one statement's handler sees and says."""

    analysis: SqlAnalysis
    file: SqlFile
    statement: SourceStatement
    suppressed: frozenset[str]
    locks: list[LockRequest] = field(default_factory=list)

    @property
    def options(self) -> SqlOptions:
        return self.analysis.options

    @property
    def knowledge(self) -> SchemaKnowledge:
        return self.analysis.knowledge

    @property
    def scope(self) -> ChangeScope:
        return self.analysis.scope

    @property
    def session(self) -> Session:
        return self.analysis.session

    def is_new(self, name: ObjectName, namespace: Namespace = Namespace.RELATION) -> bool:
        return self.scope.is_new(namespace, name.key)

    def report(
        self, rule_id: str, message: str, *, target: ObjectName | str | None = None,
        fix: str | None = None, effect: Effect | None = None, lock: LockMode | None = None,
        preexisting: bool = True, severity: Severity | None = None,
    ) -> int | None:
        """Add a finding; its index in the analysis' findings, or None when suppressed."""
        finding = self.finding(rule_id, message, target=target, fix=fix, effect=effect,
                               lock=lock, preexisting=preexisting, severity=severity)
        if finding is None:
            return None
        self.analysis.findings.append(finding)
        return len(self.analysis.findings) - 1

    def finding(
        self, rule_id: str, message: str, *, target: ObjectName | str | None = None,
        fix: str | None = None, effect: Effect | None = None, lock: LockMode | None = None,
        preexisting: bool = True, severity: Severity | None = None,
    ) -> Finding | None:
        """The finding `report` would add, at this statement, or None when suppressed: for
        one decided later (`ChangeScope.foreign_keys`)."""
        if rule_id in self.suppressed:
            return None
        info = rule(rule_id)
        return Finding(
            rule=rule_id, severity=severity or info.severity, message=message,
            effect=effect or info.effect, file=self.file.name, line=self.statement.line,
            column=self.statement.column, statement=self.statement.text,
            target=None if target is None else str(target), fix=fix, lock=lock,
            preexisting=preexisting, rollback=self.file.rollback)

    def lock(self, target: ObjectName, mode: LockMode, *, preexisting: bool) -> None:
        self.locks.append(LockRequest(target, mode, preexisting))

    def robust(self, missing: bool, what: str, fix: str, target: ObjectName | str) -> None:
        """Outside a transaction a failed migration cannot simply be re-run: ask for
        IF [NOT] EXISTS. Inside one, the failure rolls everything back, so no finding."""
        if missing and not self.session.in_transaction:
            self.report("prefer-robust-stmts", f"{what} outside a transaction: re-running "
                        "the migration after a failure part way fails here.",
                        target=target, fix=fix)


Handler = Callable[[Node, StatementReport], None]

HANDLERS: dict[str, Handler] = {}
for _module in (index_rules, constraint_rules, table_rules, object_rules, data_rules,
                session_rules):
    HANDLERS.update(_module.HANDLERS)

WANTED: dict[str, frozenset[str] | None] = dict.fromkeys(HANDLERS)
WANTED.update(object_rules.FIELDS_READ)
WANTED.update(data_rules.FIELDS_READ)
"""What of each statement's tree the handlers read (`read_script`): a statement no handler
takes (INSERT, DO...) is never decoded."""


class SqlAnalysis:
    """Feed it migration files in apply order; read `findings`."""

    def __init__(self, options: SqlOptions | None = None,
                 knowledge: SchemaKnowledge | None = None) -> None:
        self.options = options or SqlOptions()
        self.knowledge = knowledge or SchemaKnowledge()
        self.scope = ChangeScope()
        self.session = Session()
        self.findings: list[Finding] = []
        self.altered: dict[str, tuple[int, int | None]] = {}
        """Pre-existing tables an ALTER TABLE of the current file changed -> where the first
        one is (offset, line)."""

    def new_change(self) -> None:
        """Later files are a new change, deployed on its own connection: what was created so
        far is pre-existing now, and session settings are back to their defaults."""
        self.end_change()
        self.scope = ChangeScope()
        self.session = Session()

    def end_change(self) -> None:
        """What can only be judged once the change is whole: a foreign key added without an
        index on its columns (the index usually comes a statement or a file later)."""
        for table, columns, finding in self.scope.foreign_keys:
            if table in self.knowledge.columns and not self.knowledge.indexed(table, columns):
                self.findings.append(finding)
        self.scope.foreign_keys = []

    def forget_findings(self) -> None:
        self.findings = []

    def analyse(self, files: Iterable[SqlFile]) -> list[Finding]:
        for file in files:
            self.analyse_file(file)
        return self.findings

    def analyse_file(self, file: SqlFile) -> None:
        script = read_script(file.sql, WANTED)
        for problem in script.errors:
            self.findings.append(Finding(
                rule="syntax-error", severity=Severity.ERROR, message=problem.message,
                effect=Effect.ROLLBACK_DEFECT if file.rollback else Effect.CANNOT_RUN,
                file=file.name, line=problem.line, column=problem.column,
                fix="Fix the SQL so PostgreSQL's parser accepts it.", rollback=file.rollback))
        suppressions = read_suppressions(file.sql)
        for unknown in suppressions.unknown:
            known = canonical(unknown.name) in UNSUPPRESSIBLE
            self.findings.append(Finding(
                rule="unknown-suppression", severity=Severity.ERROR, effect=Effect.ADVISORY,
                message=(f"`{unknown.name}` cannot be suppressed" if known else
                         f"no rule is named `{unknown.name}`: this suppression does nothing"),
                file=file.name, line=unknown.line, column=unknown.column,
                fix="Name rules from docs/rules.md (`guardians:ignore rule-a,rule-b`).",
                rollback=file.rollback))
        if self.options.transaction_per_file:
            self.session.begin(Transaction.RUNNER)
        self.altered = {}
        previous = -1
        for statement in script.statements:
            report = StatementReport(self, file, statement,
                                     suppressions.for_statement(statement.start, previous))
            previous = statement.start
            if self.session.exclusive and statement.kind not in _UNDER_LOCK_HARMLESS:
                self._check_held_exclusive(report)
            handler = HANDLERS.get(statement.kind)
            if handler is not None:
                handler(statement.node, report)
            for name in long_identifiers(statement.text):
                report.report("identifier-too-long", f"identifier {name[:20]}... is "
                              f"{len(name.encode())} bytes: PostgreSQL silently truncates it "
                              "to 63, so the object gets another name than written.",
                              target=name[:63], fix="Choose a name of at most 63 bytes.")
            self._check_timeouts(report)
            if self.session.in_transaction:
                for lock in report.locks:
                    if lock.preexisting and lock.mode is LockMode.ACCESS_EXCLUSIVE:
                        self.session.exclusive.setdefault(lock.target.key, statement.line)
        session_rules.end_of_file(self, file)

    def soften_drop(self, namespace: Namespace, key: str, where: str) -> None:
        """The change re-creates what it dropped: clients see no missing object."""
        for index in self.scope.dropped.pop((namespace, key), []):
            finding = self.findings[index]
            self.findings[index] = replace(
                finding, effect=Effect.ADVISORY, severity=Severity.INFO,
                message=f"{finding.message} It is re-created {where}.")

    def _check_held_exclusive(self, report: StatementReport) -> None:
        """Eugene's E4: a statement run while this transaction holds ACCESS EXCLUSIVE on a
        pre-existing table keeps every query on that table waiting for it too. Once per
        transaction: the first such statement names the lock."""
        session = self.session
        if session.exclusive_reported:
            return
        session.exclusive_reported = True
        table, line = next(iter(session.exclusive.items()))
        held = ObjectName.from_key(table)
        more = len(session.exclusive) - 1
        others = f" (and {more} more table{'s' * (more > 1)})" if more else ""
        report.report(
            "holding-access-exclusive",
            f"runs while this transaction holds ACCESS EXCLUSIVE on {held}{others}, taken at "
            f"line {line}: every read and write of {held} waits until the transaction ends, "
            "so this statement's time is added to the outage.", target=held,
            lock=LockMode.ACCESS_EXCLUSIVE,
            fix="Commit right after the statement that takes ACCESS EXCLUSIVE and run the rest "
                "in a later transaction (its own migration); or make the locked statement the "
                "last one of its transaction.")

    def _check_timeouts(self, report: StatementReport) -> None:
        risky = [lock for lock in report.locks
                 if lock.preexisting and lock.mode in _WRITE_BLOCKING]
        if not risky or self.session.lock_timeout.in_effect:
            return
        strongest = max(risky, key=lambda lock: _LOCK_ORDER.index(lock.mode))
        statement_note = (" (statement_timeout is set, but it lets the lock wait block "
                          "everyone behind it for that long)"
                          if self.session.statement_timeout.in_effect else "")
        report.report(
            "require-timeout-settings",
            f"waits for {strongest.mode.value.upper().replace('_', ' ')} on "
            f"{strongest.target} with no lock_timeout in effect{statement_note}: queued "
            "behind a long query, it blocks every later query on the table.",
            target=strongest.target, lock=strongest.mode,
            fix="SET lock_timeout = '5s'; (or SET LOCAL inside the transaction) before this "
                "statement, and retry the migration when it times out.")
