"""Noticing that the broker lost its log, and healing it.

The embedded broker keeps everything in memory; a real Kafka can lose its volume. Either way
the events it had acknowledged are gone, the topics (or some of them) are gone, and so are the
consumer groups' offsets. The leading relay of each service checks, before it first publishes
and then every `relay_broker_check_seconds`:

1. that every declared topic exists, recreating the missing ones as declared (never trusting
   a producer or consumer to do it: see no_auto_create.py);
2. that the broker epoch (kafka.broker_epoch) is the one it last published under. When it
   differs, the relay replays its outbox's retention window: it marks every row published
   within `outbox_retention_hours` unpublished again, and its normal loop sends them in `seq`
   order. Consumers deduplicate by event id, so the replay is always safe.

Each service's relay replays its own outbox, so one relay recreating the topics does not hide
the loss from the others: they still see a new epoch. A relay remembers the epoch in memory:
a worker that was itself down while the broker lost its log does not know the old epoch and
does not replay when it comes back (docs/operations.md shows the replay by hand).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from aiokafka import AIOKafkaProducer

from shared.messaging.kafka import broker_epoch, create_topics, missing_topics
from shared.settings import Settings

log = logging.getLogger(__name__)


class LostLogGuard:
    def __init__(
        self, *, settings: Settings, topics: Sequence[str], replay: Callable[[], Awaitable[int]]
    ) -> None:
        self.settings = settings
        self.topics = list(topics)
        self.replay = replay
        self.epoch: str | None = None

    async def check(self, producer: AIOKafkaProducer) -> None:
        """Recreate missing declared topics; replay the outbox when the epoch changed."""
        missing = await missing_topics(self.settings, self.topics)
        if missing:
            log.warning("declared topics are missing; recreating them", extra={"topics": missing})
            await create_topics(self.settings, self.topics)
        epoch = await broker_epoch(self.settings, producer)
        if self.epoch is not None and epoch != self.epoch:
            replayed = await self.replay()
            log.warning(
                "the broker lost its log; replaying the outbox retention window",
                extra={"previous_epoch": self.epoch, "epoch": epoch, "events": replayed},
            )
        # Only after a successful replay: a failed one is tried again at the next check.
        self.epoch = epoch
