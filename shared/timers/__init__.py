"""Durable timers in PostgreSQL: reminders, escalations and expiries that survive restarts.

A service opts in by adding the `timers` table to its metadata (`add_timer_tables`) and a
migration (`create_timers_v1`), scheduling timers in its own transactions (`schedule_timer`,
`cancel_timer`) and naming a handler per kind in its ServiceSpec (`timer_handlers`); its worker
then fires each due timer exactly once (runner.py).
"""

from shared.timers.schedule import Timer, TimerHandler, cancel_timer, schedule_timer
from shared.timers.tables import add_timer_tables, create_timers_v1, drop_timers_v1

__all__ = [
    "Timer",
    "TimerHandler",
    "add_timer_tables",
    "cancel_timer",
    "create_timers_v1",
    "drop_timers_v1",
    "schedule_timer",
]
