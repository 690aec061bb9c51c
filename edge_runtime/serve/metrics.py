"""Prometheus metrics of the server (prometheus-client, one private registry per app).

``GET /metrics`` answers them in the Prometheus text format:

==========================================  =================================================
edgeinfer_requests_total{method,route,code}  HTTP answers (route is one of the known routes or "other")
edgeinfer_errors_total{code}                 answers with status >= 400, by code (499: the client left)
edgeinfer_request_duration_seconds{route}    latency histogram, request received -> answer sent
edgeinfer_inference_duration_seconds         time one request holds its slot: decoding, batching, inference
edgeinfer_images_total                       images classified
edgeinfer_busy_rejections_total{reason}      503s at admission: "queue_full", or "deadline" (the queue's wait would pass it)
edgeinfer_inference_in_flight                inference slots in use now
edgeinfer_queue_depth                        requests waiting for a slot now
edgeinfer_queue_wait_seconds                 how long each admitted request waited for its slot (0: at once)
edgeinfer_batch_size                         images per runtime call (a histogram: its count is the calls)
edgeinfer_model_load_seconds                 seconds it took to open the model (before serving)
edgeinfer_model_info{model,backend,threads}  always 1; names what is served
==========================================  =================================================

prometheus-client is imported when a ``ServeMetrics`` is made, never at module import.
"""
from __future__ import annotations

from typing import Any

ROUTES = ("/predict", "/health", "/info", "/metrics")
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
WAIT_BUCKETS = (0.0, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)


def route_label(path: str) -> str:
    """A bounded label for a request path: a known route, else "other" (no label explosion)."""
    return path if path in ROUTES else "other"


class ServeMetrics:
    """The server's counters, gauges and histograms in their own registry.

    Args:
        model: model file name, for ``edgeinfer_model_info``.
        backend: backend name.
        threads: runtime threads.
        model_load_s: seconds the model took to open (None: not measured).
    """

    def __init__(self, model: str, backend: str, threads: Any, model_load_s: float | None = None):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        r = self.registry = CollectorRegistry()
        self.requests = Counter("edgeinfer_requests", "HTTP answers", ["method", "route", "code"], registry=r)
        self.errors = Counter("edgeinfer_errors", "HTTP answers with status >= 400, by code", ["code"], registry=r)
        self.latency = Histogram("edgeinfer_request_duration_seconds", "Request received to answer sent",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=r)
        self.inference = Histogram("edgeinfer_inference_duration_seconds", "Decode and inference of one request",
                                   buckets=LATENCY_BUCKETS, registry=r)
        self.images = Counter("edgeinfer_images", "Images classified", registry=r)
        self.busy = Counter("edgeinfer_busy_rejections", "503 answers at admission: the queue was full, or its wait "
                            "would pass the deadline", ["reason"], registry=r)
        self.in_flight = Gauge("edgeinfer_inference_in_flight", "Inference slots in use", registry=r)
        self.queue_depth = Gauge("edgeinfer_queue_depth", "Requests waiting for an inference slot", registry=r)
        self.queue_wait = Histogram("edgeinfer_queue_wait_seconds", "Seconds an admitted request waited for its slot",
                                    buckets=WAIT_BUCKETS, registry=r)
        self.batch_size = Histogram("edgeinfer_batch_size", "Images per runtime call", buckets=BATCH_BUCKETS, registry=r)
        self.model_load = Gauge("edgeinfer_model_load_seconds", "Seconds to open the model", registry=r)
        self.model_load_s = None if model_load_s is None else round(model_load_s, 4)
        if model_load_s is not None:
            self.model_load.set(model_load_s)
        Gauge("edgeinfer_model_info", "The model being served (always 1)", ["model", "backend", "threads"],
              registry=r).labels(model, backend, str(threads)).set(1)
        self.counts = {"requests": 0, "2xx": 0, "4xx": 0, "5xx": 0}

    def rejected(self, reason: str) -> None:
        """Count one 503 at admission ("queue_full" or "deadline")."""
        self.busy.labels(reason).inc()

    def observe(self, method: str, path: str, status: int, seconds: float) -> None:
        """Count one answered (or abandoned, 499) request."""
        route = route_label(path)
        self.requests.labels(method, route, str(status)).inc()
        if status >= 400:
            self.errors.labels(str(status)).inc()
        self.latency.labels(route).observe(seconds)
        self.counts["requests"] += 1
        key = f"{status // 100}xx"
        self.counts[key] = self.counts.get(key, 0) + 1

    def render(self) -> tuple[bytes, str]:
        """(body, content type) for ``GET /metrics``."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
