"""Prometheus metrics shared by the whole service (default registry, exposed at /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

HTTP_REQUESTS = Counter(
    "verity_http_requests_total",
    "HTTP requests handled",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "verity_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
PROBLEMS = Counter(
    "verity_problems_total",
    "Error responses by stable error code",
    ["code"],
)
VERIFICATIONS = Counter(
    "verity_verifications_total",
    "Verifications recorded, by kind and overall verdict",
    ["kind", "verdict"],
)
FINDINGS = Counter(
    "verity_verification_findings_total",
    "Findings of recorded verifications (pill: inactive order, patient or count mismatch;"
    " imaging: the failed checks), by code",
    ["finding"],
)
MODEL_LATENCY = Histogram(
    "verity_model_inference_seconds",
    "Time per model call (embedders of the cascade, head, OCR): its _count and _sum are the cost",
    ["model"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
IMAGING_JOBS = Counter(
    "verity_imaging_jobs_total",
    "Imaging job runs by how they ended: done, retry (queued again), failed, lease_lost",
    ["result"],
)
IMAGING_JOB_SECONDS = Histogram(
    "verity_imaging_job_seconds",
    "Wall time of one imaging job run (read, list, fetch, decode, check, record)",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)
IMAGING_INSTANCES = Counter(
    "verity_imaging_instances_total",
    "DICOM instances of imaging jobs: fetched from the PACS, and decoded and fingerprinted",
    ["stage"],
)
GRPC_REQUESTS = Counter(
    "verity_grpc_requests_total",
    "gRPC calls handled, by method and gRPC status code",
    ["method", "code"],
)
GRPC_LATENCY = Histogram(
    "verity_grpc_request_duration_seconds",
    "gRPC call latency (a stream: until its last message)",
    ["method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120, 600),
)
IMAGING_TIER_SECONDS = Histogram(
    "verity_imaging_tier_seconds",
    "Wall time of one tier of one imaging-study check (headers, fingerprints, embeddings)",
    ["tier"],
    buckets=(0.001, 0.005, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120),
)
IMAGING_TIER_STUDIES = Counter(
    "verity_imaging_tier_studies_total", "Imaging-study checks that reached each tier", ["tier"]
)
MODEL_CPU_SECONDS = Counter(
    "verity_model_cpu_seconds_total",
    "Process CPU seconds spent inside each model's inference calls (all its threads)",
    ["model"],
)
