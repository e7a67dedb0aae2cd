"""Every service by name: the composition root the CLI, the dev stack and the tests start from.

`shared/` never imports this module; it is handed the specs it needs."""

from services.intake.main import SPEC as INTAKE
from services.notifications.main import SPEC as NOTIFICATIONS
from services.planning.main import SPEC as PLANNING
from services.referrals.main import SPEC as REFERRALS
from shared.messaging.kafka import all_topics
from shared.spec import ServiceSpec

SERVICES: dict[str, ServiceSpec] = {
    spec.name: spec for spec in (INTAKE, PLANNING, REFERRALS, NOTIFICATIONS)
}

# Every topic the system declares: each event type's topic and each consumer group's
# dead-letter topic. Created by `casework topics`; never auto-created by a producer.
TOPICS: list[str] = all_topics(SERVICES)

# What each service's consumers read: the Kafka ACLs of the compose stack are derived from it.
CONSUMED: dict[str, list[str]] = {name: spec.topics for name, spec in SERVICES.items()}
