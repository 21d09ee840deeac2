"""The project's import graph, read from the source: which files each stage script can import.

Stage `manifests` writes, for every stage script, the files in its import closure with their md5
(md5sum's format), and every other stage depends on its script's manifest instead of listing its
code in dvc.yaml. So a stage reruns exactly when a file it can import changes, no dependency list
can fall behind an import, and dvc.lock holds one code entry per stage instead of one per file: DVC
rewrites the whole lock after every stage, so its size is paid once per stage (docs/pipeline.md).

Standard library only: the stage must start without torch. tests/test_architecture.py checks the
graph for cycles with the same functions.
"""

from __future__ import annotations

import ast
import hashlib
import re
from pathlib import Path

PACKAGES = ("picollm", "stages")
# The registry imports each family's module by name (importlib), on the first build.
REGISTRY = ("picollm", "models", "registry.py")
REGISTERED = re.compile(r'"(picollm\.models\.\w+)[:"]')


def module_path(root: Path, name: str) -> Path | None:
    """The file of a project module (`picollm.x.y` or `stages.z`), or None for a third-party one."""
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _with_packages(root: Path, names: set[str]) -> set[str]:
    """`names` and every package above them: importing a submodule runs its package's __init__ too."""
    found = set(names)
    for name in names:
        parts = name.split(".")
        found.update(".".join(parts[:i]) for i in range(1, len(parts)) if module_path(root, ".".join(parts[:i])))
    return found


def imports_of(root: Path, path: Path) -> set[str]:
    """Every project module `path` imports, at module level or inside a function; for
    `from package import name` the submodule `package.name` when it is one."""
    found: set[str] = set()
    package = ".".join(path.relative_to(root).with_suffix("").parts[:-1])
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        found.update(name for name in names if name.split(".")[0] in PACKAGES and module_path(root, name))
    return _with_packages(root, found)


def module_name(root: Path, path: Path) -> str:
    return ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the project modules it imports, for every module under picollm/ and stages/."""
    graph = {}
    for path in sorted((root / "picollm").rglob("*.py")) + sorted((root / "stages").glob("*.py")):
        name = module_name(root, path)
        graph[name] = {m for m in imports_of(root, path) if m != name}
    registry = (root.joinpath(*REGISTRY)).read_text(encoding="utf-8")
    graph["picollm.models.registry"] |= {m for m in REGISTERED.findall(registry) if module_path(root, m)}
    return graph


def closure(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(graph.get(node, ()))
    return seen


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def stage_scripts(root: Path) -> list[str]:
    """The stage scripts' names (`train` for stages/train.py): one manifest each, but none for
    stages/manifests.py, whose stage depends on picollm/ and stages/ as a whole."""
    return sorted(path.stem for path in (root / "stages").glob("*.py") if path.stem not in ("__init__", "manifests"))


def files_of(root: Path, graph: dict[str, set[str]], script: str) -> list[str]:
    """The files `python -m stages.<script>` can import (the `stages` package included), sorted."""
    modules = _with_packages(root, closure(graph, f"stages.{script}"))
    return sorted(module_path(root, m).relative_to(root).as_posix() for m in modules)


def manifest(root: Path, graph: dict[str, set[str]], script: str) -> str:
    """md5sum's format (`md5sum -c manifests/<script>.txt` checks a tree against it)."""
    lines = [f"{hashlib.md5((root / f).read_bytes()).hexdigest()}  {f}\n" for f in files_of(root, graph, script)]
    return "".join(lines)
