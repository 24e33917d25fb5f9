"""Where libpg_query is: pglast's parser extension module, found as the import system would
find it but without importing pglast (whose package import costs more than parsing a few
hundred migrations). The Python analysis calls it through ctypes (`pg_parser`), the native
one opens it too (`native_sql`): both read the same parse trees.
"""

# os.path, not pathlib: this module is on `guardians lint`'s start-up path, and importing
# pathlib costs more than the lookup.
# ruff: noqa: PTH100, PTH113, PTH118

from __future__ import annotations

import _imp  # what importlib.machinery.EXTENSION_SUFFIXES reads, without importing importlib
import os
import sys


def find() -> str | None:
    """The path of pglast's parser extension module, or None: the first `pglast` package on
    `sys.path` and its `parser` extension module, as the import system would find them. Looked
    up with a few `stat`s: `PathFinder` would list every directory on the path (~3 ms of a
    `guardians lint` run)."""
    for entry in sys.path:
        package = os.path.join(entry or ".", "pglast")
        if not os.path.isfile(os.path.join(package, "__init__.py")):
            continue
        for suffix in _imp.extension_suffixes():
            module = os.path.join(package, "parser" + suffix)
            if os.path.isfile(module):
                return os.path.abspath(module)
        return None
    return None


PATH = find()
