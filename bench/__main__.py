"""`python -m bench`: start a private stack, run the cases, print one JSON figure per line.

stdout carries only the figures (also saved to bench/results/latest.jsonl); everything else,
the stack's own output included, goes to stderr, ending with a human summary.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import TextIO

from bench.cases import CASES, BenchContext, Figure, Options
from bench.load import parse_header
from bench.people import ORGANIZATION, TEAM, WORKER
from bench.stack import BenchStack
from shared.auth.tokens import issue_dev_token

RESULTS_PATH = Path(__file__).resolve().parent / "results" / "latest.jsonl"


def _say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


class Reporter:
    """Writes each figure as a JSON line to the real stdout and to the results file."""

    def __init__(self, out: TextIO, path: Path) -> None:
        self.out = out
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = path.open("w")
        self.figures: list[Figure] = []

    def emit(self, figure: Figure) -> None:
        line = json.dumps(figure)
        for stream in (self.out, self.file):
            stream.write(line + "\n")
            stream.flush()
        self.figures.append(figure)
        _say(describe(figure))

    def failures(self) -> list[str]:
        """Figures that counted failed requests or missing events: the run is not clean."""
        return [
            describe(figure).splitlines()[0]
            for figure in self.figures
            if any(figure.get(key) for key in ("errors", "timeouts", "registration_errors"))
        ]

    def close(self) -> None:
        self.file.close()
        self.out.flush()


def _ms(value: object) -> str:
    return f"{value:.1f} ms" if isinstance(value, float | int) else "n/a"


def describe(figure: Figure) -> str:
    """One human line per figure."""
    case = figure.get("case")
    if case in ("register_client", "register_client_at_population"):
        where = f"at {figure['clients']} clients " if "clients" in figure else ""
        line = (
            f"{case} #{figure.get('round', 1)} {where}{figure['target']:<24}"
            f" {figure['throughput_rps'] or 0:7.1f} req/s"
            f"  p50 {_ms(figure['p50_ms'])}  p99 {_ms(figure['p99_ms'])}"
            f"  errors {figure['errors']}"
        )
        cpu: dict[str, float] = figure.get("cpu_s") or {}
        busy = sorted(((s, name) for name, s in cpu.items() if s >= 0.05), reverse=True)
        if busy:
            line += f"\n      CPU seconds in {figure['elapsed_s']} s: " + ", ".join(
                f"{name} {seconds:.2f}" for seconds, name in busy
            )
        return line
    if case == "environment":
        return f"environment: {figure['cores']} cores, Python {figure['python']}"
    if case == "register_client_vs_baseline":
        return (
            f"register_client {figure['target']} / same-work baseline = {figure['ratio']}"
            f"  (/ minimal insert = {figure['ratio_to_minimal_insert']})"
        )
    if case == "register_client_at_population_vs_baseline":
        return (
            f"register_client at {figure['clients']} clients / same-work baseline ="
            f" {figure['ratio']}  (/ minimal insert = {figure['ratio_to_minimal_insert']})"
        )
    if case == "consumer_catch_up":
        return (
            f"consumer_catch_up {figure['backlog_events']} events behind after the load,"
            f" caught up in {figure['seconds']} s"
        )
    if case == "outbox_relay_latency":
        return (
            f"outbox_relay_latency (registered -> published) p50 {_ms(figure['p50_ms'])}"
            f"  p99 {_ms(figure['p99_ms'])}  max {_ms(figure['max_ms'])}"
        )
    if case == "event_latency":
        return (
            f"event_latency {figure['consumer']:<14} p50 {_ms(figure['p50_ms'])}"
            f"  p99 {_ms(figure['p99_ms'])}  max {_ms(figure['max_ms'])}"
            f"  ({figure['events']} events, {figure['timeouts']} timed out)"
        )
    if case == "inbox_first_page":
        return (
            f"inbox_first_page {figure['target']:<18} ({figure['items']} items)"
            f"  p50 {_ms(figure['p50_ms'])}  p95 {_ms(figure['p95_ms'])}"
            f"  (its SQL alone p95 {_ms(figure['baseline_sql_p95_ms'])})  errors {figure['errors']}"
        )
    if case == "crisis_to_stream":
        return (
            f"crisis_to_stream {figure['assessments']} at {figure['offered_per_s']}/s"
            f"  p50 {_ms(figure['p50_ms'])}  p99 {_ms(figure['p99_ms'])}  max {_ms(figure['max_ms'])}"
            f"  timeouts {figure['timeouts']}  errors {figure['errors']}"
        )
    if case == "referral_status_latency":
        return (
            f"referral_status_latency {figure['consumer']:<18} p50 {_ms(figure['p50_ms'])}"
            f"  p99 {_ms(figure['p99_ms'])}  ({figure['events']} status changes)"
        )
    if case == "timers_due_together":
        return (
            f"timers_due_together {figure['target']:<20} {figure['fired']}/{figure['timers']}"
            f" fired within {_ms(figure['all_fired_within_ms'])} of their second"
            f"  late p50 {_ms(figure['late_p50_ms'])}  p99 {_ms(figure['late_p99_ms'])}"
        )
    if case == "webhook_deliveries":
        return (
            f"webhook_deliveries {figure['target']:<20} {figure['delivered']}/"
            f"{figure['deliveries']} in {figure['seconds']} s: {figure['per_minute']} a minute"
            f" (concurrency {figure['concurrency']}, aim 10000 a minute)"
        )
    if case == "team_caseload":
        return (
            f"team_caseload {figure['target']:<20} {figure['workers']} workers,"
            f" {figure['open_cases']} open cases  p50 {_ms(figure['p50_ms'])}"
            f"  p95 {_ms(figure['p95_ms'])}  p99 {_ms(figure['p99_ms'])}"
        )
    return json.dumps(figure)


def _claim_stdout() -> TextIO:
    """Keep the real stdout for figures; fd 1 (so every child's stdout too) becomes stderr."""
    sys.stdout.flush()
    figures = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    return figures


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    defaults = Options()
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--concurrency", type=int, default=defaults.concurrency)
    parser.add_argument("--requests", type=int, default=defaults.requests)
    parser.add_argument("--warmup", type=int, default=defaults.warmup)
    parser.add_argument(
        "--rounds",
        type=int,
        default=defaults.rounds,
        help="load phases per target, in alternating order (ratios use the medians)",
    )
    parser.add_argument(
        "--events", type=int, default=defaults.events, help="clients registered for event latency"
    )
    parser.add_argument("--event-interval-ms", type=float, default=defaults.event_interval_ms)
    parser.add_argument(
        "--assessment-rate",
        type=float,
        default=defaults.assessment_rate,
        help="assessments per second for planning_case_from_assessment",
    )
    parser.add_argument("--event-timeout", type=float, default=defaults.event_timeout_s)
    parser.add_argument(
        "--cases", nargs="+", choices=list(CASES), default=list(CASES), metavar="CASE"
    )
    parser.add_argument(
        "--header",
        action="append",
        default=[],
        type=parse_header,
        metavar="'NAME: VALUE'",
        help="a header for every request (repeatable), e.g. 'Authorization: Bearer ...'",
    )
    parser.add_argument("--log-level", default="WARNING", help="the services' log level")
    parser.add_argument(
        "--populations",
        default=",".join(str(size) for size in defaults.populations),
        help="client populations for client_search, comma-separated (e.g. 100000,1000000)",
    )
    parser.add_argument("--searches", type=int, default=defaults.searches)
    args = parser.parse_args(argv)
    if min(args.concurrency, args.requests, args.rounds, args.events) < 1 or args.warmup < 0:
        parser.error("--concurrency, --requests, --rounds and --events must be positive")
    return args


async def run_cases(names: list[str], context: BenchContext) -> bool:
    ok = True
    for name in names:
        _say(f"case {name}")
        try:
            await CASES[name](context)
        except Exception as error:
            _say(f"case {name} failed: {error!r}")
            ok = False
    return ok


def bench_authorization(stack: BenchStack) -> tuple[str, str]:
    """A caseworker token for the private stack: it may register clients and read back the
    references of those it registered, as a case worker at intake would."""
    assert stack.settings is not None
    token = issue_dev_token(
        stack.settings,
        subject=WORKER,
        roles=["caseworker"],
        organization_id=ORGANIZATION,
        team_id=TEAM,
    )
    return ("Authorization", f"Bearer {token}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    options = Options(
        concurrency=args.concurrency,
        requests=args.requests,
        warmup=args.warmup,
        rounds=args.rounds,
        events=args.events,
        event_interval_ms=args.event_interval_ms,
        assessment_rate=args.assessment_rate,
        event_timeout_s=args.event_timeout,
        headers=tuple(args.header),
        populations=tuple(int(size) for size in args.populations.split(",") if size),
        searches=args.searches,
    )
    reporter = Reporter(_claim_stdout(), RESULTS_PATH)
    signal.signal(signal.SIGTERM, _interrupt)
    stack = BenchStack(log_level=args.log_level)
    started = time.monotonic()
    try:
        _say("starting a private stack")
        stack.start()
        _say(f"stack ready in {time.monotonic() - started:.1f} s")
        reporter.emit(
            {
                "case": "environment",
                "cores": os.cpu_count(),
                "python": platform.python_version(),
                "machine": platform.machine(),
            }
        )
        import uvloop

        if not any(name.lower() == "authorization" for name, _ in options.headers):
            options = dataclasses.replace(
                options, headers=(*options.headers, bench_authorization(stack))
            )
        context = BenchContext(stack=stack, options=options, emit=reporter.emit)
        cases_ok = uvloop.run(run_cases(args.cases, context))
        failures = reporter.failures()
        if failures:
            _say(
                "failed requests or missing events (see error_samples):\n  " + "\n  ".join(failures)
            )
        return 0 if cases_ok and not failures else 1
    except KeyboardInterrupt:
        _say("interrupted")
        return 130
    finally:
        # A second Ctrl-C must not cut the clean-up short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _say("stopping the stack")
        stack.stop()
        reporter.close()
        if reporter.figures:
            _say("summary:\n  " + "\n  ".join(describe(f) for f in reporter.figures))
        _say(
            f"done in {time.monotonic() - started:.1f} s; figures in {os.path.relpath(RESULTS_PATH)}"
        )


if __name__ == "__main__":
    sys.exit(main())
