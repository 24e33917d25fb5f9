"""The native analysis' generated tables are what native/generate.py writes from this Python:
the Unicode classes the rules' messages depend on, and the rule catalog. A rule added to
rule_catalog.py without `make native-tables` fails here, before the native module could
report it under a missing severity."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[3]


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("native_generate",
                                                  ROOT / "native" / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_unicode_tables_are_generated_from_this_python() -> None:
    generate = _generator()
    assert generate.OUT.read_text() == generate.pytext_tables(), "run `make native-tables`"


def test_the_rule_table_is_the_rule_catalog() -> None:
    generate = _generator()
    assert generate.RULES_OUT.read_text() == generate.rule_table(), "run `make native-tables`"
