"""The package's layout rules, checked: no import cycles, a planner that cannot reach HTTP,
and the public names the package docstring promises."""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pipeline_step
from tests.support.apps import SeededApp
from tests.support.registry import RegistryServer

PACKAGE = Path(pipeline_step.__file__).parent
PURE = ("pipeline_step.planning", "pipeline_step.policy")
HTTP = ("httpx", "boto3", "pipeline_step.registry.client", "pipeline_step.registry.http", "pipeline_step.backends")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def runtime_imports(path: Path) -> frozenset[str]:
    """Modules imported when ``path`` is imported (``if TYPE_CHECKING:`` blocks and function bodies excluded)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for child in ast.walk(node) if not isinstance(node, (ast.FunctionDef, ast.ClassDef)) else ():
            if isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                found.add(child.module)
                found.update(f"{child.module}.{alias.name}" for alias in child.names)
            elif isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
    return frozenset(found)


def graph() -> dict[str, set[str]]:
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    return {name: {m for m in runtime_imports(path) if m in modules and m != name} for name, path in modules.items()}


def test_there_are_no_import_cycles() -> None:
    edges = graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(edges[node]):
            if state.get(target) == 1:
                cycle = [*path[path.index(target) :], target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target, [*path, target])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])


def test_policy_and_planning_cannot_reach_http() -> None:
    """Not even indirectly: everything policy/ and planning/ import, transitively, is HTTP-free."""
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    for start in (name for name in modules if name.startswith(PURE)):
        seen: set[str] = set()
        stack = [start]
        while stack:
            current = stack.pop()
            if current in seen:
                continue
            seen.add(current)
            imported = runtime_imports(modules[current])
            reached = sorted(m for m in imported if m.startswith(HTTP))
            assert not reached, f"{start} reaches {reached} through {current}"
            stack.extend(m for m in imported if m in modules)


def test_the_package_docstring_example_runs(registry: RegistryServer, seeded: SeededApp) -> None:
    docstring = pipeline_step.__doc__ or ""
    lines: list[str] = []
    for line in docstring.split("::", 1)[1].splitlines()[1:]:
        if line.strip() and not line.startswith("    "):
            break  # the end of the literal block
        lines.append(line[4:])
    code = "\n".join(lines)
    code = code.replace("https://registry.example:5000", registry.url)
    printed: list[str] = []
    namespace: dict[str, object] = {"print": printed.append}
    exec(compile(code, "pipeline_step docstring", "exec"), namespace)
    assert len(printed) == 1 and re.match(r"dry run: 34 tags to delete \(\d+ manifests\)", printed[0]), printed
    for name in pipeline_step.__all__:
        assert getattr(pipeline_step, name) is not None
