"""Where libpg_query is: pglast's parser extension module, found as the import system would
find it but without importing pglast (whose package import costs more than parsing a few
hundred migrations). The Python analysis calls it through ctypes (`pg_parser`), the native
one opens it too (`native_sql`): both read the same parse trees.
"""

from __future__ import annotations

from importlib.machinery import EXTENSION_SUFFIXES, PathFinder


def find() -> str | None:
    """The path of pglast's parser extension module, or None."""
    package = PathFinder.find_spec("pglast")
    if package is None or not package.submodule_search_locations:
        return None
    spec = PathFinder.find_spec("pglast.parser", list(package.submodule_search_locations))
    origin = spec.origin if spec is not None else None
    if origin is None or not origin.endswith(tuple(EXTENSION_SUFFIXES)):
        return None
    return origin


PATH = find()
