"""The benchmark scripts: ``python benchmarks/<name>.py`` from a checkout, or ``edge-bench <name>`` once installed."""
