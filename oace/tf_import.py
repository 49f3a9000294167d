"""Importing TensorFlow without its native start-up noise on stderr.

TensorFlow 2.19's import writes about seven lines to file descriptor 2 from C++ (absl's "before
InitializeLog" warning, cuDNN / cuBLAS factory double registration, "computation placer already
registered"), whatever TF_CPP_MIN_LOG_LEVEL says. They are not about the user's input, and they
break the CLI's promise of one line on stderr for an error. Every module that needs TensorFlow
imports it through `import_tensorflow()`: the import runs with fd 2 pointed at a temporary file,
which is shown only if the import itself fails.
"""

from __future__ import annotations

import os
import sys
import tempfile
from types import ModuleType


def import_tensorflow() -> ModuleType:
    """`import tensorflow` with its native import-time log lines kept off stderr; the module."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            import tensorflow
        except BaseException:
            os.dup2(saved, 2)
            sink.seek(0)
            sys.stderr.write(sink.read().decode("utf-8", "replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    return tensorflow
