"""Print the README's file map: one line per module, described by its docstring's first line.

    python scripts/file_map.py   # paste the output into the code block under README's "File map"

tests/test_docs.py checks that the map names every module and nothing that does not exist.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("picollm",)  # every module below these is listed; stages/ is one line (see AFTER)
SKIPPED = ("__init__.py", "__main__.py")  # a package's __init__ docstring describes its folder
INDENT = "  "
# Entries outside the packages: no docstring to read, so they are described here.
BEFORE = {
    "params.yaml": "every parameter, validated whole before any stage runs",
    "dvc.yaml": "the pipeline's stages, their deps, params and outputs",
}
AFTER = {
    "stages/": "one thin module per DVC stage: python -m stages.NAME",
    "profiles/": "params deltas: smoke (the tests), long, gpu",
}
# Descriptions are cut only at these breaks, so what is left is a whole clause.
CLAUSE_BREAKS = (" (", ": ", ", ", "; ", " -> ")
# The README has about 12 KB for everything: a description longer than MAX_WIDTH is cut at the
# break nearest below it, keeping at least MIN_WIDTH characters (or at the first break past it).
MAX_WIDTH = 40
MIN_WIDTH = 28


def shortened(text: str, limit: int) -> str:
    """`text` cut at the clause break nearest below `limit`, else at the first one past it."""
    if len(text) <= limit:
        return text
    cuts = [
        i for i in range(MIN_WIDTH, len(text))
        if text.startswith(CLAUSE_BREAKS, i) and text[:i].count("(") == text[:i].count(")")
    ]
    within = [i for i in cuts if i <= limit]
    if within:
        return text[: within[-1]]
    # No clause ends in time: cut at the last whole word that fits, outside any parentheses.
    words = [i for i in range(MIN_WIDTH, limit + 1) if text[i:i + 1] == " " and text[:i].count("(") == text[:i].count(")")]
    return text[: words[-1]].rstrip(",;:") if words else text


def docstring_line(path: Path) -> str:
    """The first line of `path`'s docstring, cut to a whole clause; '' when it has none."""
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    if not doc:
        return ""
    lines = doc.splitlines()
    line = lines[0].strip()
    if len(lines) > 1 and lines[1].strip():  # the sentence runs on: keep its last whole clause
        line = line[:-1] if line[-1:] in ",;:" else shortened(line, len(line) - 1)
    return shortened(line.rstrip("."), MAX_WIDTH)


def package_entries(directory: Path, depth: int) -> list[tuple[str, str]]:
    """(indented name, description) for `directory` and everything below it, modules first."""
    init = directory / "__init__.py"
    entries = [(INDENT * depth + directory.name + "/", docstring_line(init) if init.exists() else "")]
    for module in sorted(directory.glob("*.py")):
        if module.name not in SKIPPED:
            entries.append((INDENT * (depth + 1) + module.name, docstring_line(module)))
    for sub in sorted(p for p in directory.iterdir() if p.is_dir() and any(p.rglob("*.py"))):
        entries.extend(package_entries(sub, depth + 1))
    return entries


def file_map(root: Path = ROOT) -> str:
    entries = list(BEFORE.items())
    for package in PACKAGES:
        entries.extend(package_entries(root / package, 0))
    entries.extend(AFTER.items())
    width = max(len(name) for name, _ in entries) + 2
    return "\n".join(f"{name:<{width}}{text}".rstrip() for name, text in entries)


if __name__ == "__main__":
    sys.stdout.write(file_map() + "\n")
