"""Measure a .tflite on a phone over adb (TFLite's benchmark_model) or on the host (LiteRT interpreter).

adb.py: device discovery, shell commands, pushes, device facts; parse.py: benchmark_model output
-> one normalized record; runner.py: the device benchmark; host.py: the host benchmark;
common.py: model description, report skeleton, aggregation; profiles.py: targets and the verdict;
report.py: bench.json / bench.md / latency.png; config.py: the options of both benchmarks and their
defaults. See docs/bench.md.
"""
