"""Export's part of a bundle: Segmenter -> ONNX -> SavedModel -> fp32/fp16 .tflite in one folder,
every form run on the same parity samples. No calibration: nothing here needs a calibration set.

Into `work`: oace_segmenter.onnx, saved_model/ (what quantize starts from), onnx2tf.log and
oace_segmenter_{fp32,fp16}.tflite. Every .tflite is inspected as it lands: a Flex op or a lost
`segment` signature fails the export. The parity samples come from the caller (the export pipeline
passes a calibration set's held-out photos), else `export.parity_samples` makes seeded synthetic ones.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm import tqdm

from oace.artifacts import Artifact
from oace.export.onnx_export import export_onnx, run_onnx
from oace.export.parity_samples import Sample
from oace.export.tf_convert import onnx_to_saved_model
from oace.export.tflite_convert import FLOAT_PRECISIONS, saved_model_to_tflite
from oace.export.verify import run_all
from oace.litert import SegmentRunner
from oace.model.segmenter import Segmenter
from oace.tflite import bundle_name
from oace.tflite.inspection import TFLiteContents, inspect_bundle_file

ONNX_NAME = "oace_segmenter.onnx"
SAVED_MODEL = "saved_model"


@dataclasses.dataclass
class FloatBundle:
    """What export wrote and what each form computed on the parity samples."""

    artifacts: dict[str, Artifact]  # "onnx", "saved_model", then one per precision ("fp32", "fp16")
    contents: dict[str, TFLiteContents]  # per precision: the ops inside its .tflite
    outputs: dict[str, list[np.ndarray]]  # "torch", "onnx" and each precision: mask [1,S,S,1] per sample


def torch_outputs(model: Segmenter, samples: Sequence[Sample]) -> list[np.ndarray]:
    with torch.no_grad():
        return [model(*(torch.from_numpy(np.array(a)) for a in s)).numpy() for s in samples]


def run_tflite(path: Path, samples: Sequence[Sample]) -> list[np.ndarray]:
    """A bundle file's masks on the samples (LiteRT, 2 threads)."""
    return run_all(SegmentRunner(path, num_threads=2), samples)


def export_float_bundle(model: Segmenter, work: Path, samples: Sequence[Sample], *,
                        precisions: Sequence[str] = FLOAT_PRECISIONS, opset: int = 17) -> FloatBundle:
    """Every float step into the folder `work`, each form checked and run on `samples`."""
    model = model.eval()
    unknown = [p for p in precisions if p not in FLOAT_PRECISIONS]
    if unknown:
        raise ValueError(f"export makes {', '.join(FLOAT_PRECISIONS)}; {', '.join(unknown)} is quantize's")
    result = FloatBundle({}, {}, {"torch": torch_outputs(model, samples)})
    bar = tqdm(["onnx", SAVED_MODEL, *precisions], desc="export", unit="step")
    for step in bar:
        bar.set_postfix_str(step)
        if step == "onnx":
            result.artifacts["onnx"] = export_onnx(model, work / ONNX_NAME, opset=opset)
            result.outputs["onnx"] = run_all(lambda *a: run_onnx(work / ONNX_NAME, *a), samples)
        elif step == SAVED_MODEL:
            result.artifacts[SAVED_MODEL] = onnx_to_saved_model(work / ONNX_NAME, work / SAVED_MODEL,
                                                                log_path=work / "onnx2tf.log")
        else:
            path = work / bundle_name(step)
            result.artifacts[step] = saved_model_to_tflite(work / SAVED_MODEL, path, precision=step)
            result.contents[step] = inspect_bundle_file(path)
            result.outputs[step] = run_tflite(path, samples)
    return result
