"""Dependencies inside ``fl_helpers`` point one way: down the layers of the README's table.

:data:`LAYERS` lists the modules from the bottom (imports nothing of ours) to the top (the front
doors). A module may import modules of its own layer or of a lower one, never of a higher one.
The list is the README's table ("The helper package and its notation"), row by row, and
:func:`test_layers_are_the_readme_table` keeps the two identical. A new module goes into one row
of both; ``*`` matches any run of characters (``*_widgets``).

Every ``import`` statement counts, at any depth (a lazy import inside a function is still a
dependency). Running a module as a script with ``runpy`` (``experiment``'s ``__main__`` block
runs ``fl_helpers.cli``) is not an import and is not checked.
"""

from __future__ import annotations

import ast
import fnmatch
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "fl_helpers"

#: The layers, bottom first; the same rows as the README's table.
LAYERS: list[list[str]] = [
    ["_validation", "_command_line"],
    ["paths", "reproducibility"],
    ["schedule"],
    ["discrete_noise"],
    ["secagg_crypto"],
    ["secagg_protocol"],
    ["privacy", "accounting"],
    ["data", "models"],
    ["client"],
    ["aggregation"],
    ["faults", "checkpoints"],
    ["engine"],
    ["training"],
    ["dp_sgd", "dp_ftrl", "distributed_dp", "robust", "attacks", "audit", "cross_silo",
     "deploy", "psi", "paillier", "vertical", "vertical_protocol", "split_learning", "transfer",
     "heterogeneity", "personalisation"],
    ["experiment", "experiment_defaults", "reporting"],
    ["plotting", "cli", "widgets", "*_widgets", "cross_silo_widget", "quiet"],
]


def _modules() -> list[str]:
    return sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")


def _layer(module: str) -> int:
    """The index of the layer that lists ``module`` (an exact name before a pattern)."""
    exact = [i for i, names in enumerate(LAYERS) if module in names]
    if exact:
        return exact[0]
    matched = [i for i, names in enumerate(LAYERS)
               for name in names if fnmatch.fnmatchcase(module, name)]
    assert matched, (f"fl_helpers/{module}.py is in no layer: add it to one row of the README's "
                     "table and of LAYERS in tests/test_layering.py")
    return matched[0]


def _imports(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` for every ``fl_helpers`` module that ``path`` imports, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[1]) for alias in node.names
                      if alias.name.startswith("fl_helpers.")]
        elif isinstance(node, ast.ImportFrom):
            if node.level and node.module:  # from .x import y
                found.append((node.lineno, node.module.split(".")[0]))
            elif node.level:  # from . import x
                found += [(node.lineno, alias.name) for alias in node.names]
            elif node.module == "fl_helpers":
                found += [(node.lineno, alias.name) for alias in node.names]
            elif node.module and node.module.startswith("fl_helpers."):
                found.append((node.lineno, node.module.split(".")[1]))
    return found


def _readme_layers() -> list[list[str]]:
    text = (ROOT / "README.md").read_text()
    start = text.index("| module | what it holds |")
    rows = []
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        first_cell = line.split("|")[1]
        rows.append(re.findall(r"`([^`]+)`", first_cell))
    return rows


def test_layers_are_the_readme_table():
    assert _readme_layers() == LAYERS, (
        "the README's module table and LAYERS in tests/test_layering.py differ: change both")


def test_every_module_is_in_exactly_one_layer_and_every_name_is_a_module():
    modules = _modules()
    for module in modules:
        _layer(module)  # fails with the fix if it is in none
    names = [name for names in LAYERS for name in names]
    assert len(names) == len(set(names)), "a name is listed in two layers"
    for name in names:
        assert any(fnmatch.fnmatchcase(m, name) for m in modules), \
            f"LAYERS lists {name!r}, which matches no fl_helpers/*.py"


def test_imports_point_to_the_same_or_a_lower_layer():
    wrong = []
    for module in _modules():
        level = _layer(module)
        for line, target in _imports(PACKAGE / f"{module}.py"):
            if target == "__init__" or target not in _modules():
                continue
            if _layer(target) > level:
                wrong.append(f"fl_helpers/{module}.py:{line} imports {target} "
                             f"(layer {_layer(target)} {LAYERS[_layer(target)]}, above its own "
                             f"layer {level} {LAYERS[level]})")
    assert not wrong, "imports against the layering:\n" + "\n".join(wrong)


def test_the_package_itself_imports_nothing():
    # Importing fl_helpers must stay free of side effects and of every layer.
    assert _imports(PACKAGE / "__init__.py") == []


def test_the_import_parser_sees_every_form(tmp_path):
    source = tmp_path / "example.py"
    source.write_text(
        "import fl_helpers.training\n"
        "from fl_helpers import aggregation as agg, faults\n"
        "from fl_helpers.robust import Krum\n"
        "from . import plotting\n"
        "from .cli import main\n"
        "def lazy():\n"
        "    from fl_helpers import widgets\n"
        "import numpy\n")
    assert sorted(name for _, name in _imports(source)) == sorted([
        "training", "aggregation", "faults", "robust", "plotting", "cli", "widgets"])
