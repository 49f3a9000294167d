"""TensorFlow's native import-time log lines stay off stderr (the CLI's one-line promise)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.cli_contract import REPO


def _stderr_of(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stderr


@pytest.mark.slow
def test_plain_import_is_noisy_and_import_tensorflow_is_silent():
    noisy = _stderr_of("import tensorflow")
    assert "register" in noisy or "InitializeLog" in noisy  # the noise this module exists for
    quiet = _stderr_of("from oace.tf_import import import_tensorflow; tf = import_tensorflow(); "
                       "import sys; print('after', file=sys.stderr); assert tf.__version__")
    assert quiet.strip() == "after"  # stderr works again right after the import
