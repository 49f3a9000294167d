"""Device profiles: the load / inference targets a bundle must meet on a given phone, and the verdict."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

from oace.errors import InputError

DEFAULT_LOAD_MS = 25.0
DEFAULT_INFERENCE_MS = 250.0


@dataclasses.dataclass(frozen=True)
class DeviceProfile:
    """Targets for one phone (or class of phones). `models` are ro.product.model prefixes it matches."""

    name: str
    load_ms: float = DEFAULT_LOAD_MS
    inference_ms: float = DEFAULT_INFERENCE_MS
    models: tuple[str, ...] = ()
    cpu_mask: str | None = None  # e.g. "big": pin benchmark_model to the fastest cluster
    notes: str = ""


PROFILES: dict[str, DeviceProfile] = {
    "default": DeviceProfile("default"),
    "Galaxy S23": DeviceProfile(
        "Galaxy S23", models=("SM-S911", "SM-S916", "SM-S918"), cpu_mask="big",
        notes="Snapdragon 8 Gen 2 for Galaxy; 1 prime + 4 performance + 3 efficiency cores",
    ),
    "Pixel 8": DeviceProfile("Pixel 8", models=("Pixel 8",), cpu_mask="big", notes="Google Tensor G3"),
}


def get_profile(name: str | None, device_model: str | None = None) -> DeviceProfile:
    """A profile by name, by JSON file path, by matching the device model, or the default.

    A JSON profile file holds {"name", "load_ms", "inference_ms", optional "cpu_mask", "notes"}.
    """
    if name:
        if name in PROFILES:
            return PROFILES[name]
        lowered = {k.lower(): v for k, v in PROFILES.items()}
        if name.lower() in lowered:
            return lowered[name.lower()]
        p = Path(name)
        if p.suffix == ".json":
            try:
                data = json.loads(p.read_text())
                prof = DeviceProfile(
                    name=str(data.get("name", p.stem)),
                    load_ms=float(data.get("load_ms", DEFAULT_LOAD_MS)),
                    inference_ms=float(data.get("inference_ms", DEFAULT_INFERENCE_MS)),
                    models=tuple(data.get("models", ())),
                    cpu_mask=data.get("cpu_mask"),
                    notes=str(data.get("notes", "")),
                )
            except (OSError, ValueError, TypeError, AttributeError) as exc:
                raise InputError(f"device profile {p} is not a readable profile JSON: {exc}") from None
            if not all(math.isfinite(v) and v > 0 for v in (prof.load_ms, prof.inference_ms)):
                raise InputError(f"device profile {p}: load_ms and inference_ms must be finite numbers > 0, "
                                 f"got {prof.load_ms!r} and {prof.inference_ms!r}")
            return prof
        raise InputError(f"unknown device profile {name!r}: use one of {', '.join(PROFILES)} or a .json file")
    if device_model:
        for prof in PROFILES.values():
            if any(device_model.startswith(m) for m in prof.models):
                return prof
    return PROFILES["default"]


def with_targets(profile: DeviceProfile, load_ms: float | None, inference_ms: float | None) -> DeviceProfile:
    """The profile with explicit --target-* values overriding its own."""
    return dataclasses.replace(
        profile,
        load_ms=profile.load_ms if load_ms is None else float(load_ms),
        inference_ms=profile.inference_ms if inference_ms is None else float(inference_ms),
    )


def verdict(
    load_ms: float | None,
    inference_ms: float | None,
    profile: DeviceProfile,
    *,
    preprocessing_in_graph: bool | None,
    preprocess_ms: float | None = None,
    delegate: str | None = None,
    delegation: str | None = None,
) -> dict[str, Any]:
    """PASS / FAIL / NO DATA against the profile's targets, with every reason spelled out.

    When preprocessing runs outside the graph, its time (`preprocess_ms`, measured by the app) is
    added to inference; when it is in the graph the measured inference already contains it.
    """
    reasons: list[str] = []
    warnings: list[str] = []
    counted = inference_ms
    if preprocessing_in_graph is False:
        if preprocess_ms is not None and inference_ms is not None:
            counted = inference_ms + preprocess_ms
            reasons.append(f"inference counts {preprocess_ms:g} ms of out-of-graph preprocessing")
        else:
            warnings.append("preprocessing runs outside the graph and is NOT counted (pass --preprocess-ms)")
    elif preprocessing_in_graph:
        reasons.append("preprocessing is in the graph: the inference figure includes it")
    if delegate not in (None, "xnnpack", "cpu") and delegation in ("none", "failed"):
        warnings.append(
            f"DELEGATE FELL BACK TO CPU: {delegate} was requested but delegation={delegation}; "
            "these are CPU figures, not {delegate} figures".replace("{delegate}", str(delegate))
        )
    elif delegation == "partial":
        warnings.append(f"{delegate} delegate is only partial: some ops run on the CPU")
    load_ok = None if load_ms is None else load_ms <= profile.load_ms
    inf_ok = None if counted is None else counted <= profile.inference_ms
    if load_ok is None or inf_ok is None:
        result = "NO DATA"
    elif load_ok and inf_ok:
        result = "PASS"
    else:
        result = "FAIL"
    if load_ok is False:
        reasons.append(f"load {load_ms:.1f} ms > {profile.load_ms:g} ms")
    if inf_ok is False:
        reasons.append(f"inference {counted:.1f} ms > {profile.inference_ms:g} ms")
    return {
        "result": result,
        "load_ms": load_ms,
        "inference_ms": counted,
        "load_target_ms": profile.load_ms,
        "inference_target_ms": profile.inference_ms,
        "load_ok": load_ok,
        "inference_ok": inf_ok,
        "reasons": reasons,
        "warnings": warnings,
    }
