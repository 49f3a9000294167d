"""Step 2: ONNX -> TensorFlow SavedModel with onnx2tf, re-signed as the bundle contract.

onnx2tf facts this step handles (measured, ../shared/design/TOOLCHAIN.md):
- inputs that are already NHWC would be transposed again: every input is named in
  keep_shape_absolutely_input_names;
- its output is named `output_0`: we re-sign the model as signature `segment` with inputs
  `image`/`clicks`/`prev_mask` and output `mask`;
- it calls sys.exit on some errors and runs onnxsim as a subprocess (skipped silently when not
  on PATH): we simplify beforehand and pass not_use_onnxsim, and turn an exit into a ToolkitError;
- no -oiqt / -coion: those download sample data or a schema (fails offline).
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
import time
from pathlib import Path

from oace.artifacts import Artifact, sha256_file
from oace.errors import ToolkitError
from oace.reports import tool_versions

SIGNATURE = "segment"


def onnx_to_saved_model(onnx_path: str | os.PathLike, out_dir: str | os.PathLike, *, log_path: str | os.PathLike | None = None) -> Artifact:
    """Convert and re-sign; the SavedModel lands at out_dir (replaced atomically as a folder)."""
    import onnx
    import onnx2tf
    import tensorflow as tf

    t0 = time.perf_counter()
    onnx_path, out = Path(onnx_path), Path(out_dir)
    inputs = [i.name for i in onnx.load(str(onnx_path), load_external_data=False).graph.input]
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".onnx2tf-", dir=out.parent))
    log = io.StringIO()
    try:
        try:
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                onnx2tf.convert(
                    input_onnx_file_path=str(onnx_path), output_folder_path=str(work / "raw"),
                    output_signaturedefs=True, not_use_onnxsim=True, keep_shape_absolutely_input_names=inputs,
                    verbosity="error",
                )
        except SystemExit as exc:
            raise ToolkitError(f"{onnx_path}: onnx2tf failed (exit {exc.code}); see {log_path or 'its log'}") from None
        except Exception as exc:
            raise ToolkitError(f"{onnx_path}: onnx2tf failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}") from None
        finally:
            if log_path is not None:
                Path(log_path).write_text(log.getvalue())

        loaded = tf.saved_model.load(str(work / "raw"))
        fn = loaded.signatures["serving_default"]
        specs = fn.structured_input_signature[1]
        outputs = list(fn.structured_outputs)
        if sorted(specs) != sorted(inputs) or len(outputs) != 1:
            raise ToolkitError(f"{onnx_path}: onnx2tf produced inputs {sorted(specs)} / outputs {outputs}; expected {sorted(inputs)} / one output")
        out_name = outputs[0]
        ordered = [tf.TensorSpec(specs[n].shape, specs[n].dtype, name=n) for n in inputs]

        class Bundle(tf.Module):
            def __init__(self, f):
                super().__init__()
                self.f = f

            @tf.function(input_signature=ordered)
            def segment(self, *args):
                return {"mask": self.f(**dict(zip(inputs, args)))[out_name]}

        bundle = Bundle(fn)
        tf.saved_model.save(bundle, str(work / "signed"), signatures={SIGNATURE: bundle.segment.get_concrete_function()})
        if out.exists():
            shutil.rmtree(out)
        os.replace(work / "signed", out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    pb = out / "saved_model.pb"
    return Artifact(out, sum(f.stat().st_size for f in out.rglob("*") if f.is_file()), sha256_file(pb),
                    time.perf_counter() - t0, tool_versions(("onnx2tf", "tf-keras")))
