"""OACE toolkit: train, evaluate, export, quantize and benchmark click-based segmenters."""

__version__ = "0.1.0"
