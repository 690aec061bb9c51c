"""The kernel: what the runtime, train, export and the benchmarks all use.

errors (the one exception family and its exit codes), registry (name -> entry,
filled by a decorator), io (atomic files, writable folders), command (the
``main(argv) -> int`` runner), environment (CPU, cores, versions), timing
(latency statistics), progress (bars over tqdm) and metrics (the one
``classification_metrics``). Standard library and numpy only: no runtime,
no TensorFlow, and nothing above it in the project.
"""
