"""Report writing shared by every stage: a JSON for machines, a Markdown for people.

Every report records tool versions, the git sha of the toolkit and the command line.
"""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterable, Sequence

from oace import __version__
from oace.artifacts import write_json_atomic, write_text_atomic

_DISTRIBUTIONS = (
    "torch", "numpy", "pillow", "onnx", "onnxruntime", "onnx2tf", "tensorflow",
    "ai-edge-litert", "tflite-runtime",
)


def tool_versions(extra: Iterable[str] = ()) -> dict[str, str]:
    """Installed versions of the toolchain (absent packages are omitted)."""
    out = {"oace-toolkit": __version__, "python": platform.python_version()}
    for name in (*_DISTRIBUTIONS, *extra):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def git_sha() -> str | None:
    """The toolkit checkout's commit, or None outside a git checkout."""
    root = Path(__file__).resolve().parent.parent
    try:
        res = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    sha = res.stdout.strip()
    return sha if res.returncode == 0 and sha else None


def provenance(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """What every report carries: versions, git sha, command line, host."""
    return {
        "versions": tool_versions(),
        "git_sha": git_sha(),
        "command": list(sys.argv if argv is None else argv),
        "host": {"machine": platform.machine(), "system": platform.system(), "python": platform.python_version()},
    }


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    return "\n".join(lines) + "\n"


def write_report(out_dir: str | Path, name: str, data: dict[str, Any], markdown: str) -> tuple[Path, Path]:
    """Write `name.json` and `name.md` atomically into out_dir; return both paths."""
    out = Path(out_dir)
    json_path = write_json_atomic(out / f"{name}.json", data)
    md_path = write_text_atomic(out / f"{name}.md", markdown)
    return json_path, md_path


def agg_figure(figsize: tuple[float, float], dpi: float | None = None) -> Any:
    """A matplotlib Figure on its own Agg canvas, for a report's PNG (`fig.savefig(path, format="png")`).

    No pyplot and no `matplotlib.use`: nothing global changes (the caller's backend and pyplot's
    figure list stay as they were) and the figure is freed with its last reference."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    return fig
