"""The package's shape: imports point one way, and no module grows past 400 lines.

Read from the source with ``ast``, so nothing is imported. Every import counts, including those
inside functions (they run too, just later), except those under ``if TYPE_CHECKING:``.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "maskmtl_cli"
MAX_LINES = 400
MAX_FUNCTION_LINES = 60


def _modules() -> dict[str, tuple[Path, bool]]:
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        modules[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return modules


MODULES = _modules()


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imported_names(tree: ast.AST, module: str, is_package: bool):
    stack = [tree]
    while stack:
        node = stack.pop()
        if _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".")[: len(module.split(".")) - node.level + is_package]
                base = ".".join(parts + ([node.module] if node.module else []))
            for alias in node.names:
                yield f"{base}.{alias.name}"


def _owner(name: str) -> str | None:
    """The module of ``maskmtl_cli`` that an imported name lives in (None: another package)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> dict[str, set[str]]:
    """Module -> the modules of ``maskmtl_cli`` it imports (a package's ``__init__`` included)."""
    graph = {}
    for module, (path, is_package) in MODULES.items():
        targets = set()
        for name in _imported_names(ast.parse(path.read_text()), module, is_package):
            owner = _owner(name)
            while owner and owner != "maskmtl_cli":
                if owner != module:
                    targets.add(owner)
                owner = owner.rpartition(".")[0]  # importing a.b.c runs a/b/__init__ first
        graph[module] = targets
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _area(module: str) -> str:
    """``maskmtl_cli.training.loop`` -> ``training``; ``maskmtl_cli.io`` -> ``io``."""
    return module.split(".")[1] if module.count(".") else module


def test_no_module_imports_back_into_itself():
    graph = {module: {t for t in targets if not module.startswith(t + ".")}
             for module, targets in import_graph().items()}  # a package's own __init__ aside
    assert _cycles(graph) == []


def test_no_package_imports_back_into_itself():
    areas: dict[str, set[str]] = {}
    for module, targets in import_graph().items():
        areas.setdefault(_area(module), set()).update(
            _area(t) for t in targets if _area(t) != _area(module) and t != "maskmtl_cli")
    areas.pop("maskmtl_cli", None)
    assert _cycles(areas) == []


def test_models_and_prediction_do_not_depend_on_training():
    graph = import_graph()
    for module, targets in graph.items():
        if _area(module) in ("models", "inference", "prediction", "faces", "evaluation",
                             "serve", "reports", "onnx_model", "model_schema", "runs"):
            assert not [t for t in targets if _area(t) == "training"], module


def test_core_does_not_import_the_cli():
    for module, targets in import_graph().items():
        if _area(module) not in ("cli", "__main__"):
            assert not [t for t in targets if _area(t) == "cli"], module


def test_masking_workers_stay_light():
    """Mask worker processes never import Keras (through ``maskmtl_cli.models``)."""
    for module, targets in import_graph().items():
        if _area(module) == "masking":
            assert not [t for t in targets if _area(t) in ("models", "training")], module


def test_no_module_over_400_lines():
    long = {str(path.relative_to(PACKAGE.parent)): count
            for path, _ in MODULES.values()
            if (count := len(path.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_evaluation_is_a_stage_folder():
    assert (PACKAGE / "evaluation" / "__init__.py").is_file()


def test_no_function_body_over_60_lines():
    """Docstrings and signatures aside (a Typer command's options are its signature)."""
    long = []
    for module, (path, _) in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            body = node.body
            if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                body = body[1:] or body
            lines = body[-1].end_lineno - body[0].lineno + 1
            if lines > MAX_FUNCTION_LINES:
                long.append(f"{module}.{node.name}: {lines}")
    assert long == []
