"""The code's shape, checked (issue 13): data flows one way through the stage packages, and no
function outside tests/ is longer than 60 lines or takes more than 8 parameters."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Layers in the order data flows; a module may import its own package and any lower layer only.
# `oace`'s shared pieces (errors, artifacts, report writers, LiteRT loading, the .tflite names, passes
# and inspection) sit below every stage; the CLI, the demo, the app and the export pipeline sit above
# all of them.
COMMON = {"oace", "oace.artifacts", "oace.errors", "oace.evaluation_sets", "oace.litert", "oace.reports", "oace.tf_import",
          "oace.tflite", "oace.tflite.inspection", "oace.tflite.passes"}
RANK = {"common": 0, "model": 1, "calibration_data": 2, "export": 2, "quantize": 3, "android_bench": 4, "surface": 5}
STAGES = ("model", "calibration_data", "export", "quantize", "android_bench")
# Folders scanned: the stage folders (installed as oace.<folder>, see setup.cfg) and oace/ itself.
FOLDERS = STAGES + ("oace",)

MAX_LINES, MAX_PARAMS = 60, 8
# function (path:name) -> why it may exceed the limits
EXCEPTIONS: dict[str, str] = {}


def _layer(module: str) -> str:
    """"model", "export", ... for a stage module (oace.model.x), else "common" or "surface"."""
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in STAGES:
        return parts[1]
    return "common" if module in COMMON else "surface"


def _module_of(path: Path, root: Path) -> str:
    """The installed name of a source file: model/segmenter.py -> oace.model.segmenter."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    parts = parts[:-1] if parts[-1] == "__init__" else parts
    return ".".join(parts if parts[0] == "oace" else ["oace", *parts])


def _sources(packages, root: Path = ROOT) -> list[Path]:
    return sorted(p for pkg in packages for p in (root / pkg).rglob("*.py") if "__pycache__" not in p.parts)


def _imports(tree: ast.AST) -> list[str]:
    """Absolute module names imported anywhere in the file (function-level imports included)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append(node.module)
    return found


def against_the_flow(root: Path = ROOT) -> set[tuple[str, str]]:
    bad = set()
    for path in _sources(FOLDERS, root):
        here = _module_of(path, root)
        for target in _imports(ast.parse(path.read_text())):
            if target.split(".")[0] != "oace":
                continue
            mine, theirs = _layer(here), _layer(target)
            same_package = mine == theirs and mine in STAGES
            if not same_package and (RANK[theirs] > RANK[mine] or (RANK[theirs] == RANK[mine] and mine != theirs)):
                bad.add((path.relative_to(root).as_posix(), target))
    return bad


def test_no_stage_imports_a_later_one():
    """No exception left (issue 13 moved the export pipeline above export and quantize): every import
    anywhere in the stages and oace/ follows the flow."""
    found = against_the_flow()
    assert not found, f"imports against the flow (model -> export -> quantize -> android_bench): {sorted(found)}"


def test_the_flow_check_flags_backward_imports_only(tmp_path):
    files = {
        "model/net.py": "import torch\nfrom oace.errors import ToolkitError\n",  # common: fine
        "model/bad.py": "def f():\n    from oace.export.onnx_export import export_onnx\n",  # model -> export: backward
        "export/onnx.py": "from oace.model.net import f\n",  # forward: fine
        "export/cal.py": "import oace.calibration_data.manifest\n",  # same rank, other package: not allowed
        "android_bench/run.py": "from oace.quantize.int8 import q\nfrom oace.commands import bench\n",  # the CLI: backward
        "oace/commands/bench.py": "from oace.android_bench.run import x\n",  # the CLI reads every stage: fine
        "export/chain.py": "from oace.quantize.int8 import quantize\n",  # export -> quantize: backward
        "quantize/q.py": "from oace.tflite.passes import p\nfrom oace.tflite import SIGNATURE\n",  # shared: fine
        "oace/pipeline.py": "from oace.export.x import e\nfrom oace.quantize.y import q\n",  # surface: fine
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert against_the_flow(tmp_path) == {
        ("model/bad.py", "oace.export.onnx_export"), ("export/cal.py", "oace.calibration_data.manifest"),
        ("android_bench/run.py", "oace.commands"), ("export/chain.py", "oace.quantize.int8")}


def bare_stage_imports(root: Path = ROOT) -> list[str]:
    """Imports of a stage by its folder name (`import model`), which an installed oace lacks."""
    bad = []
    for path in _sources(FOLDERS + ("tests", "benchmarks"), root):
        for target in _imports(ast.parse(path.read_text())):
            if target.split(".")[0] in STAGES:
                bad.append(f"{path.relative_to(root).as_posix()}: {target}")
    return bad


def test_every_import_goes_through_the_oace_namespace():
    assert not bare_stage_imports(), "import these as oace.<stage>:\n" + "\n".join(bare_stage_imports())


def _functions(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            a = node.args
            names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs]
            params = len(names) - (1 if names and names[0] in ("self", "cls") else 0)
            yield node, node.end_lineno - node.lineno + 1, params


def test_no_function_is_over_60_lines_or_8_parameters():
    over = []
    for path in _sources(("model", "export", "quantize", "android_bench", "calibration_data", "oace", "benchmarks")):
        for node, lines, params in _functions(path):
            key = f"{path.relative_to(ROOT)}:{node.name}"
            if (lines > MAX_LINES or params > MAX_PARAMS) and key not in EXCEPTIONS:
                over.append(f"{key} (line {node.lineno}): {lines} lines, {params} parameters")
    assert not over, "split these (or add them to EXCEPTIONS with a reason):\n" + "\n".join(over)
