"""The benchmark cases: each an async function of a BenchContext that emits figures.

To add a case, write `async def my_case(context: BenchContext) -> None` that calls
`context.emit({"case": "my_case", ...})` for each figure, and list it in CASES. Cases run in
the order of CASES, on one stack; `python -m bench --cases NAME ...` runs a subset.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from bench import partner, planning
from bench.load import (
    REQUEST_ERRORS,
    HttpConnection,
    build_request,
    percentile,
    rounded,
    run_load_process,
)
from bench.people import people_bodies
from bench.planning_staff import team_caseload
from bench.population import grow_population, sample_people
from bench.referral_loop import referral_status_latency
from bench.stack import BenchStack, CpuMeter

Figure = dict[str, Any]


@dataclass(frozen=True)
class Options:
    concurrency: int = 32
    requests: int = 3000
    warmup: int = 200
    rounds: int = 1
    events: int = 200
    # Assessments per second for planning_case_from_assessment (open loop).
    assessment_rate: float = 100.0
    event_interval_ms: float = 20.0
    event_timeout_s: float = 10.0
    # Client populations for the search case (10^5 by default; add 1000000 for 10^6).
    populations: tuple[int, ...] = (100_000,)
    searches: int = 400
    # One worker searching alone, then several at once on the same cores.
    search_concurrency: tuple[int, ...] = (1, 4)
    # Sent with every request, to every target (e.g. an Authorization header).
    headers: tuple[tuple[str, str], ...] = ()


@dataclass
class BenchContext:
    stack: BenchStack
    options: Options
    emit: Callable[[Figure], None]


Case = Callable[[BenchContext], Awaitable[None]]


BASELINE = "baseline_raw_asyncpg"
MINIMAL = "baseline_minimal_insert"
INTAKE_TARGETS = ("intake_workers_paused", "intake")


def _baseline_targets(stack: BenchStack) -> list[tuple[str, str, bool]]:
    return [
        (MINIMAL, f"{stack.baseline_url}/v1/minimal-clients", True),
        (BASELINE, f"{stack.baseline_url}/v1/clients", True),
    ]


async def register_client(context: BenchContext) -> None:
    """POST /v1/clients under load: the raw-asyncpg baselines and intake, same parameters.

    Intake runs twice: with every worker paused (SIGSTOP), which measures the API alone like
    the baselines; then as deployed, its relay and the three consumers working off the events
    on the same cores meanwhile. Each phase starts once the consumers have caught up. With
    several rounds the order alternates and the ratios use the median throughputs.
    """
    stack, options = context.stack, context.options
    intake_url = f"{stack.api_url('intake')}/v1/clients"
    targets = [
        *_baseline_targets(stack),
        ("intake_workers_paused", intake_url, True),
        ("intake", intake_url, False),
    ]
    throughput: dict[str, list[float]] = {target: [] for target, _, _ in targets}
    for round_number in range(1, options.rounds + 1):
        for target, url, pause_workers in targets if round_number % 2 else targets[::-1]:
            await stack.wait_caught_up()
            figure = await _load_phase(context, target, url, pause_workers=pause_workers)
            figure["round"] = round_number
            context.emit(figure)
            if figure["throughput_rps"] is not None:
                throughput[target].append(figure["throughput_rps"])
            if target == "intake":
                # How long the relay and consumers need to work off what intake accepted.
                backlog, seconds = await stack.wait_caught_up()
                context.emit(
                    {
                        "case": "consumer_catch_up",
                        "round": round_number,
                        "backlog_events": backlog,
                        "seconds": round(seconds, 2),
                        "events_per_s": round(backlog / seconds, 1)
                        if backlog and seconds > 0
                        else None,
                    }
                )
    medians = {target: _median(values) for target, values in throughput.items()}
    for target in INTAKE_TARGETS:
        context.emit(
            {
                "case": "register_client_vs_baseline",
                "target": target,
                **_ratios(medians, target),
                "rounds": options.rounds,
            }
        )


def _ratios(throughput: dict[str, float | None], target: str) -> dict[str, float | None]:
    """`ratio`: target / the same-work baseline; `ratio_to_minimal_insert`: target / the
    two-insert endpoint."""
    rps = throughput.get(target)

    def of(baseline: str) -> float | None:
        reference = throughput.get(baseline)
        return round(rps / reference, 3) if rps and reference else None

    return {"ratio": of(BASELINE), "ratio_to_minimal_insert": of(MINIMAL)}


def _median(values: list[float]) -> float | None:
    return percentile(values, 50) if values else None


async def _load_phase(
    context: BenchContext, target: str, url: str, *, pause_workers: bool
) -> Figure:
    options = context.options
    await context.stack.analyze()
    meter = CpuMeter(context.stack.process_groups())
    if pause_workers:
        context.stack.pause_workers()
    try:
        result = await run_load_process(
            url,
            bodies=people_bodies(options.warmup + options.requests),
            concurrency=options.concurrency,
            requests=options.requests,
            warmup=options.warmup,
            headers=options.headers,
            on_measuring=meter.start,
            on_done=meter.stop,
        )
    finally:
        if pause_workers:
            context.stack.resume_workers()
    figure: Figure = {
        "case": "register_client",
        "target": target,
        "requests": result.requests,
        "concurrency": options.concurrency,
        "throughput_rps": result.throughput_rps,
        "p50_ms": result.p50_ms,
        "p99_ms": result.p99_ms,
        "errors": result.errors,
        "duplicates_refused": result.duplicates_refused,
        "mean_ms": result.mean_ms,
        "max_ms": result.max_ms,
        "elapsed_s": result.elapsed_s,
    }
    if meter.seconds is not None:
        figure["cpu_s"] = {"load_generator": result.cpu_s, **meter.seconds}
    if result.error_samples:
        figure["error_samples"] = result.error_samples
    return figure


async def event_latency(context: BenchContext) -> None:
    """Register clients one at a time; how long until each consumer has stored the reference.

    Latency = received_at (PostgreSQL's now() in the consumer's transaction) - registered_at
    (intake's clock when it accepted the request), both read back from GET /v1/client-refs/{id}.
    The polling only finds the references; it takes no part in the figure.
    """
    stack, options = context.stack, context.options
    url = f"{stack.api_url('intake')}/v1/clients"
    raws = iter(
        build_request("POST", url, body, headers=options.headers)
        for body in people_bodies(20 + options.events)
    )
    intake = HttpConnection.for_url(url)
    # Warm-up: on a fresh stack the consumer groups are still joining (seconds); some events
    # on every partition (keyed by client id, 3 partitions: 20 miss one with p < 0.001) and
    # waiting for them makes sure each consumer owns its partitions before measuring.
    try:
        for _ in range(20):
            await intake.request(next(raws))
    finally:
        await intake.close()
    await stack.wait_caught_up()
    registered: list[tuple[str, float]] = []  # (client id, time.monotonic() at the answer)
    errors = 0
    interval = options.event_interval_ms / 1000
    started = time.monotonic()
    try:
        for index in range(options.events):
            delay = started + index * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                status, body = await intake.request(next(raws))
            except REQUEST_ERRORS:
                errors += 1
                await intake.close()
                continue
            if status != 201:
                errors += 1
                continue
            registered.append((json.loads(body)["id"], time.monotonic()))
    finally:
        await intake.close()
    services = stack.client_ref_services
    outcomes = await asyncio.gather(
        *(_collect_latencies(stack.api_url(service), registered, options) for service in services)
    )
    relay = await stack.relay_latencies_ms([client_id for client_id, _ in registered])
    context.emit(
        {
            "case": "outbox_relay_latency",
            "events": len(relay),
            "interval_ms": options.event_interval_ms,
            "p50_ms": rounded(percentile(relay, 50)),
            "p99_ms": rounded(percentile(relay, 99)),
            "max_ms": rounded(max(relay)) if relay else None,
        }
    )
    for service, (latencies, timeouts) in zip(services, outcomes, strict=True):
        context.emit(
            {
                "case": "event_latency",
                "consumer": service,
                "events": len(latencies),
                "interval_ms": options.event_interval_ms,
                "p50_ms": rounded(percentile(latencies, 50)),
                "p99_ms": rounded(percentile(latencies, 99)),
                "max_ms": rounded(max(latencies)) if latencies else None,
                "timeouts": timeouts,
                "registration_errors": errors,
            }
        )


async def _collect_latencies(
    base_url: str, registered: list[tuple[str, float]], options: Options
) -> tuple[list[float], int]:
    """For each client, poll this service's reference until it is there: (latencies ms, misses)."""
    connection = HttpConnection.for_url(base_url)
    latencies: list[float] = []
    misses = 0
    try:
        for client_id, answered in registered:
            raw = build_request(
                "GET", f"{base_url}/v1/client-refs/{client_id}", headers=options.headers
            )
            deadline = answered + options.event_timeout_s
            while True:
                try:
                    status, body = await connection.request(raw)
                except REQUEST_ERRORS:
                    await connection.close()
                    status, body = 0, b""
                if status == 200:
                    reference = json.loads(body)
                    latency = datetime.fromisoformat(
                        reference["received_at"]
                    ) - datetime.fromisoformat(reference["registered_at"])
                    latencies.append(latency.total_seconds() * 1000)
                    break
                if time.monotonic() > deadline:
                    misses += 1
                    break
                await asyncio.sleep(0.02)
    finally:
        await connection.close()
    return latencies, misses


async def client_search(context: BenchContext) -> None:
    """At each population size: search before create (a misspelled family name, day and month
    of the birth date swapped every other query), then registration with the duplicate check
    against the baseline again, in the same run."""
    stack, options = context.stack, context.options
    for size in options.populations:
        seconds = await grow_population(stack.admin_url, size)
        context.emit({"case": "population", "clients": size, "seed_seconds": round(seconds, 1)})
        for concurrency in options.search_concurrency:
            await _search_phase(context, size, concurrency)
        figures = [
            await _load_phase(context, target, url, pause_workers=pause_workers)
            for target, url, pause_workers in (
                *_baseline_targets(stack),
                ("intake_workers_paused", f"{stack.api_url('intake')}/v1/clients", True),
            )
        ]
        for figure in figures:
            context.emit({**figure, "case": "register_client_at_population", "clients": size})
        throughput = {figure["target"]: figure["throughput_rps"] for figure in figures}
        context.emit(
            {
                "case": "register_client_at_population_vs_baseline",
                "clients": size,
                **_ratios(throughput, "intake_workers_paused"),
            }
        )


def _misspelled(name: str) -> str:
    """Two neighbouring letters in the middle exchanged: 'Johnson' -> 'Jonhson'."""
    if len(name) < 4:
        return name + name[-1]
    middle = len(name) // 2
    return name[: middle - 1] + name[middle] + name[middle - 1] + name[middle + 1 :]


def _swapped(birth_date: str) -> str:
    year, month, day = birth_date.split("-")
    return f"{year}-{day}-{month}" if int(day) <= 12 else birth_date


async def _search_phase(context: BenchContext, size: int, concurrency: int) -> None:
    stack, options = context.stack, context.options
    people = await sample_people(stack.admin_url, options.searches)
    base = f"{stack.api_url('intake')}/v1/clients/search"
    raws = [
        build_request(
            "GET",
            f"{base}?{urlencode({'name': f'{given} {_misspelled(family)}', 'birth_date': _swapped(born) if n % 2 else born})}",
            headers=options.headers,
        )
        for n, (given, family, born) in enumerate(people)
    ]
    latencies: list[float] = []
    found = errors = 0
    pending = iter(raws)

    async def searcher() -> None:
        nonlocal found, errors
        connection = HttpConnection.for_url(base)
        try:
            for raw in pending:
                started = time.perf_counter()
                try:
                    status, body = await connection.request(raw)
                except REQUEST_ERRORS:
                    errors += 1
                    await connection.close()
                    continue
                if status != 200:
                    errors += 1
                    continue
                latencies.append((time.perf_counter() - started) * 1000)
                candidates = json.loads(body)["items"]
                found += bool(candidates and candidates[0].get("likely_duplicate"))
        finally:
            await connection.close()

    await asyncio.gather(*(searcher() for _ in range(concurrency)))
    context.emit(
        {
            "case": "client_search",
            "clients": size,
            "searches": len(raws),
            "concurrency": concurrency,
            "p50_ms": rounded(percentile(latencies, 50)),
            "p95_ms": rounded(percentile(latencies, 95)),
            "p99_ms": rounded(percentile(latencies, 99)),
            "top_candidate_likely_duplicate": round(found / len(raws), 3) if raws else None,
            "errors": errors,
        }
    )


async def partner_read(context: BenchContext) -> None:
    """A partner's shared record (ADDRESSED: referrals and consents checked) against the
    case worker's read of the same client, alternating, in the same run (bench/partner.py)."""
    for figure in await partner.partner_read(context.stack, context.options.headers):
        context.emit(figure)


from bench.notifications import crisis_to_stream, inbox_first_page  # noqa: E402
from bench.timers import timers_due_together  # noqa: E402  (they name BenchContext for types only)
from bench.webhooks import webhook_deliveries  # noqa: E402  (the same)


def _directory_cases() -> dict[str, Case]:
    from bench.directory import directory_import, directory_matching

    return {"directory_import": directory_import, "directory_matching": directory_matching}


CASES: dict[str, Case] = {
    "register_client": register_client,
    "event_latency": event_latency,
    "client_search": client_search,
    "partner_read": partner_read,
    "timers_due_together": timers_due_together,
    "inbox_first_page": inbox_first_page,
    "crisis_to_stream": crisis_to_stream,
    "webhook_deliveries": webhook_deliveries,
    "referral_status_latency": referral_status_latency,
    "team_caseload": team_caseload,
    "planning_case_from_assessment": planning.planning_case_from_assessment,
    "planning_timeline": planning.planning_timeline,
    **_directory_cases(),
}
