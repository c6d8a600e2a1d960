"""The package's shape: no import cycle between its modules (type-only imports count), no
module-level import running up the layers, and a top level of packages."""

from __future__ import annotations

import ast
from pathlib import Path

import ncf

ROOT = Path(ncf.__file__).parent


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, name: str, modules: set[str], *, top_only: bool = False) -> set[str]:
    """Modules of ncf a module imports: at its top, inside a function (a lazy import is an
    edge too) or for type checkers (``if TYPE_CHECKING:``, an edge too); with ``top_only``,
    only those run when the module is imported (no lazy or type-only ones)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    if top_only:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                node.body = []
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                node.body = []
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            # ``from pkg import sub`` imports the submodule; ``from pkg import name`` the package
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in modules else base)
    return {m for m in found if m.split(".")[0] == "ncf"}


def find_cycle(root: Path) -> list[str] | None:
    """An import cycle among the modules under ``root`` (a package folder), or None."""
    modules = {_module_name(p, root): p for p in root.rglob("*.py")}
    names = set(modules)
    graph = {name: _imports(path, name, names) & names for name, path in modules.items()}
    for name, deps in graph.items():
        deps.discard(name)
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                return [*stack[stack.index(dep) :], dep]
            if dep not in state and (cycle := visit(dep)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for name in sorted(graph):
        if name not in state and (cycle := visit(name)):
            return cycle
    return None


def test_no_import_cycle() -> None:
    cycle = find_cycle(ROOT)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


#: The layers, top down: a module imports (at its top) only from its own layer or below.
LAYERS = (
    ("cli",),
    ("service", "studies"),
    ("recommender",),
    ("training",),
    ("evaluation",),
    ("models", "data"),
    ("exceptions", "_version"),
)


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if len(parts) < 2:
        return None  # ncf itself: the public facade, imported lazily
    return next((i for i, names in enumerate(LAYERS) if parts[1] in names), None)


def _floor(module: str) -> str:
    return [*module.split("."), ""][1]


def test_no_import_runs_up_the_layers() -> None:
    modules = {_module_name(p, ROOT): p for p in ROOT.rglob("*.py")}
    upward = []
    for name, path in modules.items():
        mine = _layer(name)
        for dep in _imports(path, name, set(modules), top_only=True):
            theirs = _layer(dep)
            if mine is not None and theirs is not None and theirs < mine:
                upward.append(f"{name} -> {dep}")
            if {_floor(name), _floor(dep)} == {"models", "data"}:
                upward.append(f"{name} -> {dep}")  # the two floors at the bottom stay apart
    assert not upward, "imports up the layers: " + ", ".join(sorted(upward))


def test_the_top_level_holds_packages() -> None:
    rooms = sorted(
        p.name for p in ROOT.iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()
    )
    loose = [r for r in rooms if r.endswith(".py")]
    assert set(loose) <= {"__init__.py", "__main__.py", "exceptions.py", "_version.py"}, loose
    assert len(rooms) <= 16, rooms


def test_the_cycle_finder_finds_one(tmp_path: Path) -> None:
    pkg = tmp_path / "ncf"
    (pkg / "cli").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "cli" / "__init__.py").write_text("def main():\n    from ncf.cli import commands\n")
    (pkg / "cli" / "commands.py").write_text("from ncf import cli\n")
    (pkg / "cli" / "output.py").write_text("from ncf.cli.commands import x\n")
    assert find_cycle(pkg) == ["ncf.cli", "ncf.cli.commands", "ncf.cli"]


def test_the_command_line_starts_without_torch_or_pandas() -> None:
    """``ncf --version`` and ``--help`` only build the parser: no heavy import (start-up), the
    optional extras' (matplotlib for figures, Optuna for ``ncf tune``) included."""
    import subprocess
    import sys

    code = (
        "import sys, ncf, ncf.cli; ncf.cli.build_parser().format_help(); "
        "print(sorted(m for m in ('torch', 'pandas', 'numpy', 'scipy', 'matplotlib', 'optuna') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
