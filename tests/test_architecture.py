"""The tree shows the architecture: layers that point one way, no import cycles, one task in one place."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "tasktool"

# lower layers first; a module may import its own layer and the ones before it, never a later one
LAYERS = [
    ("errors", "console", "hub", "options", "metrics", "threads"),
    ("io",),
    ("runtime", "backends", "onnx_generation", "distributed", "tiny"),
    ("accel",),
    ("engine",),
    ("evaluator", "training"),
    ("tasks",),
    ("inference", "recipes", "api", "serve", "export"),
    ("cli", "demo", "__main__"),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every tasktool module a file imports, at module level or inside functions."""
    found: set[str] = set()
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("tasktool"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            if not base.startswith("tasktool"):
                continue
            for alias in node.names:  # `from tasktool.io import media` imports tasktool.io.media
                candidate = f"{base}.{alias.name}"
                found.add(candidate if _exists(candidate) else base)
    return {name for name in found if name != module_name(path)}


def _exists(name: str) -> bool:
    path = PACKAGE.parent / Path(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports(p) for p in PACKAGE.rglob("*.py")}


def layer_of(module: str) -> int:
    top = module.split(".")[1] if module.count(".") else "__init__"
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    return -1


def test_no_import_cycles_under_tasktool():
    edges = graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            nxt = nxt if nxt in edges else nxt.rsplit(".", 1)[0]
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt) :] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if state.get(nxt) is None and nxt in edges:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if state.get(node) is None:
            visit(node)


def test_every_module_belongs_to_a_layer():
    unplaced = [m for m in graph() if m != "tasktool" and layer_of(m) < 0]
    assert not unplaced, f"add these to LAYERS: {unplaced}"


def test_layers_point_one_way():
    wrong = [
        f"{module} imports {target}"
        for module, targets in graph().items()
        for target in targets
        if module != "tasktool" and target != "tasktool" and layer_of(target) > layer_of(module)
    ]
    assert not wrong, "\n".join(sorted(wrong))


def test_io_imports_nothing_above_it():
    allowed = ("tasktool.io", "tasktool.errors", "tasktool.console", "tasktool.hub")
    wrong = [
        f"{module} imports {target}"
        for module, targets in graph().items()
        if module.startswith("tasktool.io")
        for target in targets
        if not target.startswith(allowed)
    ]
    assert not wrong, "\n".join(wrong)


def test_the_engines_never_import_a_task_folder():
    engines = (
        "tasktool.engine",
        "tasktool.evaluator",
        "tasktool.training",
        "tasktool.io",
        "tasktool.runtime",
    )
    wrong = [
        f"{module} imports {target}"
        for module, targets in graph().items()
        if module.startswith(engines)
        for target in targets
        if target.startswith("tasktool.tasks")
    ]
    assert not wrong, "\n".join(wrong)


def test_only_the_cli_and_the_api_import_the_server():
    """tasktool.serve pulls in FastAPI: nothing on the infer/finetune path may depend on it."""
    wrong = [
        f"{module} imports {target}"
        for module, targets in graph().items()
        if not module.startswith(("tasktool.serve", "tasktool.cli", "tasktool.api"))
        for target in targets
        if target.startswith("tasktool.serve")
    ]
    assert not wrong, "\n".join(wrong)


def _task_files() -> dict[str, set[Path]]:
    from tasktool.tasks.registry import TASKS

    files = {p for p in PACKAGE.rglob("*") if p.suffix in (".py", ".yaml") and "__pycache__" not in p.parts}
    return {
        name: {p for p in files if (PACKAGE / "tasks" / spec.package) not in p.parents}
        for name, spec in TASKS.items()
    }


def _mentions(path: Path, words: tuple[str, ...]) -> bool:
    text = path.read_text(encoding="utf-8").lower()
    return any(word in text for word in words)


@pytest.mark.parametrize("task", sorted(__import__("tasktool.tasks.registry").tasks.registry.TASKS))
def test_a_task_is_named_in_at_most_two_files_outside_its_folder(task):
    """The registry and one more (e.g. a recipe): everything else about a task lives in its folder."""
    words = (task, task.replace("-", "_"))
    if task == "depth-estimation":
        words += ("depth",)
    outside = sorted(str(p.relative_to(PACKAGE)) for p in _task_files()[task] if _mentions(p, words))
    assert len(outside) <= 2, outside
