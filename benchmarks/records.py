"""Typed rows of the benchmark reports (compare.py and merge.py).

Each record's field names ARE the report's JSON and CSV field names (a
contract: merge.py reads reports written by older versions on other devices),
so ``to_dict()`` is ``dataclasses.asdict`` and the CSV header is the field list.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping

# The measured figures a variant entry copies from its fastest latency row.
LATENCY_FIGURES = ("load_ms", "first_inference_ms", "mean_ms", "std_ms", "p50_ms", "p90_ms", "p99_ms", "throughput_ips",
                   "peak_rss_mb", "macs", "gmacs_per_s", "pct_of_peak")


@dataclass
class LatencyRow:
    """One model x backend x thread count as latency.py measured it, in a fresh process.

    The worker fills the measured part; the parent adds the file's variant
    facts (``with_variant``). ``to_dict()`` is the report's JSON row, which
    compare.py, merge.py and the plots read by these names.
    """

    model: str
    backend: str
    threads: int
    batch_size: int
    xnnpack: bool | None
    delegate_applied: bool | None
    accelerator: Any
    dynamic_batch: bool
    input_dtype: str
    import_ms: float
    load_ms: float
    first_inference_ms: float
    cold_start_ms: float
    mean_ms: float
    std_ms: float
    min_ms: float
    max_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    throughput_ips: float | None
    peak_rss_mb: float | None
    rss_start_mb: float | None
    rss_before_load_mb: float | None
    rss_after_load_mb: float | None
    macs: int | None
    gmacs_per_s: float | None
    pct_of_peak: float | None
    warmup: int
    runs: int
    seed: int
    input_images: int
    input_shape: list[int]
    input_sha256: str
    pid: int
    # the file's facts, added by the parent (benchmarks._common.variant_info)
    variant: str | None = None
    label: str | None = None
    path: str | None = None
    format: str | None = None
    quantize: str | None = None
    is_float: bool | None = None
    size_bytes: int | None = None
    sha256: str | None = None
    threads_requested: int | None = None

    VARIANT_FIELDS = ("variant", "label", "path", "format", "quantize", "is_float", "size_bytes", "sha256")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "LatencyRow":
        """A row back from the worker's JSON; an unknown or missing field is an error, not a silent gap."""
        return cls(**d)

    def with_variant(self, info: Mapping[str, Any], threads_requested: int) -> "LatencyRow":
        for k in self.VARIANT_FIELDS:
            setattr(self, k, info[k])
        self.threads_requested = threads_requested
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class VariantEntry:
    """One model x backend at its fastest thread count, with its accuracy: a row of compare.py's table."""

    device: str
    variant: str
    label: str
    path: str
    format: str
    quantize: str
    is_float: bool
    sha256: str
    backend: str
    size_bytes: int
    best_threads: int
    delegate_applied: bool | None
    load_ms: float | None = None
    first_inference_ms: float | None = None
    mean_ms: float | None = None
    std_ms: float | None = None
    p50_ms: float = 0.0
    p90_ms: float | None = None
    p99_ms: float | None = None
    throughput_ips: float | None = None
    peak_rss_mb: float | None = None
    macs: int | None = None
    gmacs_per_s: float | None = None
    pct_of_peak: float | None = None
    p50_ms_by_threads: dict[str, float] = field(default_factory=dict)
    accuracy: float | None = None
    macro_f1: float | None = None
    agreement: float | None = None
    delta_vs_float_pts: float | None = None
    name: str = ""  # the display name: label, plus the backend when one file ran on several
    same_files: list[str] = field(default_factory=list)  # byte-identical copies measured as this one ("selected = ...")

    @classmethod
    def from_latency(cls, row: Mapping[str, Any], device: str) -> "VariantEntry":
        return cls(device=device, variant=row["variant"], label=row["label"], path=row["path"], format=row["format"],
                   quantize=row["quantize"], is_float=row["is_float"], sha256=row["sha256"], backend=row["backend"],
                   size_bytes=row["size_bytes"], best_threads=row["threads"], delegate_applied=row["delegate_applied"],
                   **{k: row.get(k) for k in LATENCY_FIGURES})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CsvRow:
    """One line of compare.py's report.csv: a variant x backend x thread count."""

    device: str
    variant: str
    label: str
    format: str
    quantize: str
    backend: str
    threads: int
    batch_size: int
    size_bytes: int
    load_ms: float | None
    first_inference_ms: float | None
    mean_ms: float | None
    std_ms: float | None
    min_ms: float | None
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    throughput_ips: float | None
    peak_rss_mb: float | None
    macs: int | None
    gmacs_per_s: float | None
    pct_of_peak: float | None
    delegate_applied: bool | None
    accuracy: float | None
    macro_f1: float | None
    agreement: float | None
    warmup: int | None
    runs: int | None
    seed: int | None

    @classmethod
    def build(cls, row: Mapping[str, Any], device: str, accuracy: Mapping[str, Any] | None) -> "CsvRow":
        extra = {"device": device, "accuracy": accuracy["accuracy"] if accuracy else None,
                 "macro_f1": accuracy["macro_avg"]["f1"] if accuracy else None,
                 "agreement": accuracy["agreement"] if accuracy else None}
        return cls(**{f: extra[f] if f in extra else row.get(f) for f in CSV_FIELDS})

    def values(self) -> list[Any]:
        return [getattr(self, f) for f in CSV_FIELDS]


CSV_FIELDS = tuple(f.name for f in fields(CsvRow))


@dataclass
class MergedRow:
    """One device x variant x backend in merge.py's merged report."""

    device: str
    variant: str
    label: str | None
    backend: str
    threads: int | None
    size_bytes: int | None
    load_ms: float | None
    p50_ms: float
    p90_ms: float | None
    p99_ms: float | None
    throughput_ips: float | None
    peak_rss_mb: float | None
    gmacs_per_s: float | None
    accuracy: float | None
    sha256: str | None

    @classmethod
    def build(cls, entry: Mapping[str, Any], device: str) -> "MergedRow":
        return cls(**{f: (device if f == "device" else entry.get(f)) for f in MERGED_FIELDS})

    @property
    def display_name(self) -> str:
        return self.label or self.variant

    def values(self) -> list[Any]:
        return [getattr(self, f) for f in MERGED_FIELDS]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


MERGED_FIELDS = tuple(f.name for f in fields(MergedRow))
