"""The import rules of the design: stages import downwards only, and the heavy libraries stay out of
the command line's start-up path."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "slmkit"

# Lower rank = lower layer. A module may import its own layer or any layer below it.
RANK = {
    "__init__": 0,
    "errors": 0,
    "atomic": 0,
    "charts": 1,
    "config": 1,
    "task": 2,
    "templates": 2,
    "data": 3,
    "models": 3,
    "registry": 3,
    "retrieval": 3,
    "eval": 4,
    "monitor": 4,
    "serve": 4,
    "train": 4,
    "pipeline": 5,
    "retrain": 5,
    "provenance": 5,
    "advise": 5,
    "cli": 6,
    "ui": 6,
    "__main__": 7,
}
FORBIDDEN = {("eval", "train"), ("monitor", "serve")}
HEAVY = ("torch", "transformers", "peft", "vllm", "accelerate", "bitsandbytes")


def part_of(path: Path) -> str:
    """The top-level part of slmkit a source file belongs to: `train`, `config`, `__init__`..."""
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def imports(path: Path) -> list[tuple[int, str, bool]]:
    """(line, imported module, at module level) for every import in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module, id(node) in top))
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name, id(node) in top) for alias in node.names)
    return found


def sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_part_of_the_package_has_a_layer():
    assert {part_of(path) for path in sources()} <= set(RANK)


def test_stages_import_downwards_only():
    wrong = []
    for path in sources():
        me = part_of(path)
        for line, module, _ in imports(path):
            if module != "slmkit" and not module.startswith("slmkit."):
                continue
            target = module.split(".")[1] if "." in module else "__init__"
            if target == me:
                continue
            if RANK[target] > RANK[me] or (me, target) in FORBIDDEN:
                wrong.append(f"{path.relative_to(PACKAGE)}:{line} ({me}) imports {module}")
    assert wrong == []


def test_heavy_libraries_are_imported_inside_functions():
    wrong = []
    for path in sources():
        for line, module, at_top in imports(path):
            root = module.split(".")[0]
            if root in HEAVY and (at_top or part_of(path) == "registry"):
                wrong.append(f"{path.relative_to(PACKAGE)}:{line} imports {module}")
    assert wrong == []


def test_the_command_line_starts_without_torch():
    code = f"import sys, slmkit.cli.main\nprint(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", f"importing the command line loaded {out.strip()}"
