"""Every service by name: what the CLI, the dev stack and the tests iterate over."""

from services.intake.main import SPEC as INTAKE
from services.notifications.main import SPEC as NOTIFICATIONS
from services.planning.main import SPEC as PLANNING
from services.referrals.main import SPEC as REFERRALS
from shared.spec import ServiceSpec

SERVICES: dict[str, ServiceSpec] = {
    spec.name: spec for spec in (INTAKE, PLANNING, REFERRALS, NOTIFICATIONS)
}
