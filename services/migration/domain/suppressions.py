"""`-- guardians:ignore RULE[,RULE]` (the next statement) and `-- guardians:ignore-file RULE`.

An unknown rule name suppresses nothing and is reported as `unknown-suppression` (an error
finding naming the file and line; `guardians lint` exits 2 on it, as on any usage error):
a typo must not silently leave a check on, nor look as if it turned one off. Syntax errors
cannot be suppressed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from services.migration.domain.rule_catalog import UNSUPPRESSIBLE, canonical

_DIRECTIVE = re.compile(r"--[ \t]*guardians:(ignore-file|ignore)\b([^\n]*)")


@dataclass(frozen=True)
class UnknownRuleName:
    name: str
    line: int
    column: int


@dataclass
class Suppressions:
    whole_file: frozenset[str] = frozenset()
    next_statement: list[tuple[int, frozenset[str]]] = field(default_factory=list)
    """(character offset of the directive, rules) in file order."""
    unknown: list[UnknownRuleName] = field(default_factory=list)

    def for_statement(self, start: int, previous_start: int) -> frozenset[str]:
        """Rules off for the statement at `start`: directives after the previous one."""
        if not self.next_statement:
            return self.whole_file
        rules = set(self.whole_file)
        for offset, names in self.next_statement:
            if previous_start < offset < start:
                rules |= names
        return frozenset(rules)


def read_suppressions(sql: str) -> Suppressions:
    found = Suppressions()
    if "guardians:" not in sql:
        return found
    whole: set[str] = set()
    for match in _DIRECTIVE.finditer(sql):
        names: set[str] = set()
        listed = match.group(2).split("--", 1)[0]
        for raw in re.split(r"[,\s]+", listed.strip()):
            if not raw:
                continue
            rule = canonical(raw)
            if rule is None or rule in UNSUPPRESSIBLE:
                line = sql.count("\n", 0, match.start()) + 1
                column = match.start() - (sql.rfind("\n", 0, match.start()) + 1) + 1
                found.unknown.append(UnknownRuleName(raw, line, column))
            else:
                names.add(rule)
        if match.group(1) == "ignore-file":
            whole |= names
        else:
            found.next_statement.append((match.start(), frozenset(names)))
    found.whole_file = frozenset(whole)
    return found
