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
import re
import shutil
import time
from pathlib import Path

from oace.artifacts import Artifact, publish_dir, sha256_file, staged_dir, write_text_atomic
from oace.errors import ToolkitError
from oace.reports import tool_versions
from oace.tf_import import import_tensorflow
from oace.tflite import SIGNATURE


def onnx_to_saved_model(onnx_path: str | os.PathLike, out_dir: str | os.PathLike, *, log_path: str | os.PathLike | None = None) -> Artifact:
    """Convert and re-sign; the SavedModel lands at out_dir, published as a whole folder.

    onnx2tf rewrites the .onnx it is given in place, so it runs on a private copy in a temporary
    folder: `onnx_path` is never touched. Its log is written atomically (never a 0-byte file)."""
    import onnx

    t0 = time.perf_counter()
    onnx_path, out = Path(onnx_path), Path(out_dir)
    inputs = [i.name for i in onnx.load(str(onnx_path), load_external_data=False).graph.input]
    with staged_dir(out) as work:
        private = work / onnx_path.name
        shutil.copyfile(onnx_path, private)
        log = io.StringIO()
        try:
            _run_onnx2tf(private, work / "raw", inputs, log, shown=onnx_path)
        finally:
            if log_path is not None and log.getvalue():
                write_text_atomic(log_path, log.getvalue())
        _resign(work / "raw", work / "signed", inputs, onnx_path)
        publish_dir(work / "signed", out)
    pb = out / "saved_model.pb"
    return Artifact(out, sum(f.stat().st_size for f in out.rglob("*") if f.is_file()), sha256_file(pb),
                    time.perf_counter() - t0, tool_versions(("onnx2tf", "tf-keras")))


def _run_onnx2tf(onnx_file: Path, raw: Path, inputs: list[str], log: io.StringIO, *, shown: Path) -> None:
    import_tensorflow()  # before onnx2tf imports it: its native noise stays off stderr
    import onnx2tf

    try:
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            onnx2tf.convert(
                input_onnx_file_path=str(onnx_file), output_folder_path=str(raw),
                output_signaturedefs=True, not_use_onnxsim=True, keep_shape_absolutely_input_names=inputs,
                verbosity="error",
            )
    except SystemExit as exc:  # its log lives in the private folder, deleted with it: quote its last line
        text = re.sub(r"\x1b\[[0-9;]*m", "", log.getvalue())  # onnx2tf colours its messages
        last = next((line.strip() for line in reversed(text.splitlines()) if line.strip()), "no log output")
        raise ToolkitError(f"{shown}: onnx2tf failed (exit {exc.code}): {last[:200]}") from None
    except Exception as exc:
        raise ToolkitError(f"{shown}: onnx2tf failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}") from None


def _resign(raw: Path, signed: Path, inputs: list[str], shown: Path) -> None:
    """Save onnx2tf's SavedModel again with signature `segment`: inputs in order, output `mask`."""
    tf = import_tensorflow()

    loaded = tf.saved_model.load(str(raw))
    fn = loaded.signatures["serving_default"]
    specs = fn.structured_input_signature[1]
    outputs = list(fn.structured_outputs)
    if sorted(specs) != sorted(inputs) or len(outputs) != 1:
        raise ToolkitError(f"{shown}: onnx2tf produced inputs {sorted(specs)} / outputs {outputs}; expected {sorted(inputs)} / one output")
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
    tf.saved_model.save(bundle, str(signed), signatures={SIGNATURE: bundle.segment.get_concrete_function()})
