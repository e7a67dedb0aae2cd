"""Prometheus metrics every process exposes at /metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter(
    "casework_http_requests_total",
    "HTTP requests served.",
    ["service", "method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "casework_http_request_seconds",
    "HTTP request latency.",
    ["service", "method", "route"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
OUTBOX_BACKLOG = Gauge(
    "casework_outbox_backlog", "Outbox rows not yet published to Kafka.", ["service"]
)
OUTBOX_OLDEST_SECONDS = Gauge(
    "casework_outbox_oldest_unpublished_seconds",
    "Age of the oldest unpublished outbox row (0 when none).",
    ["service"],
)
OUTBOX_PUBLISHED = Counter(
    "casework_outbox_published_total", "Events the relay published.", ["service"]
)
OUTBOX_REPLAYED = Counter(
    "casework_outbox_replayed_total",
    "Events the relay sent again because the broker lost its log.",
    ["service"],
)
RELAY_FAILURES = Counter(
    "casework_outbox_relay_failures_total", "Relay rounds that failed and will retry.", ["service"]
)
CONSUMER_LAG = Gauge(
    "casework_consumer_lag",
    "Messages on a partition not yet processed by the group.",
    ["group", "topic", "partition"],
)
CONSUMER_MESSAGES = Counter(
    "casework_consumer_messages_total",
    "Messages a consumer group finished with, by outcome.",
    ["group", "outcome"],
)
CONSUMER_RETRIES = Counter(
    "casework_consumer_retries_total", "Handler attempts that failed and were retried.", ["group"]
)
CONSUMER_STALLED_SECONDS = Gauge(
    "casework_consumer_stalled_seconds",
    "How long the group has been retrying one message for transient errors (0 when not).",
    ["group"],
)
TIMERS_FIRED = Counter(
    "casework_timers_fired_total", "Timers whose handler ran and committed.", ["service", "kind"]
)
TIMER_FAILURES = Counter(
    "casework_timer_failures_total",
    "Timer handler attempts that failed (retried later, or parked).",
    ["service", "kind"],
)
TIMERS_PARKED = Counter(
    "casework_timers_parked_total",
    "Timers parked after timer_max_attempts failed attempts.",
    ["service", "kind"],
)
TIMERS_OVERDUE = Gauge(
    "casework_timers_overdue",
    "Timers of the worker's kinds that are due and not yet fired (not parked).",
    ["service"],
)
