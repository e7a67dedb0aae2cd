"""Protected data classes on the bus: which facts are protected, and who may read them.

Domestic violence (VAWA), substance use (42 CFR Part 2), HIV, mental health and child safety
are protected data classes (`DataClass` other than `general`). The class of every need category
and flag type is data, in `data_classes.json`, so adding an instrument's category is a reviewed
line there, not code. Protected facts travel only on the protected topics, whose readers
are named below (the broker's ACLs grant exactly these); general topics and the audit stream
(the agency-facing feed) never carry them, nor anything that reveals that one exists. The
general events enforce it in their schema (their classified fields accept only general values),
and `fields.json` lists every field each event type may carry (tests/test_contracts.py).
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

from pydantic import BaseModel, ConfigDict

from shared.events.consent import DataClass
from shared.events.contracts import Topic

DATA_CLASSES_PATH = Path(__file__).resolve().parent / "data_classes.json"


class Classification(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str
    need_categories: dict[str, DataClass]
    flag_types: dict[str, DataClass]


CLASSIFICATION = Classification.model_validate_json(DATA_CLASSES_PATH.read_text(encoding="utf-8"))

# Who may read each protected topic. Needs and flags: planning keeps a case's needs to plan
# services for them, notifications escalates crises; referrals and agency systems never read
# them. Consents to share protected classes (shared/events/consent.py): every service that keeps
# consent facts (shared/auth/consents.py), so that referrals can let protected classes cross
# under a consent that names the organisation. Agency systems never read either.
PROTECTED_TOPIC_READERS = MappingProxyType(
    {
        Topic.INTAKE_PROTECTED: frozenset({"planning", "notifications"}),
        Topic.INTAKE_PROTECTED_CONSENTS: frozenset({"planning", "referrals", "notifications"}),
    }
)


def need_class(category: str) -> DataClass | None:
    """None: not classified yet, and so handled as protected."""
    return CLASSIFICATION.need_categories.get(category)


def is_general_need(category: str) -> bool:
    return need_class(category) is DataClass.GENERAL


def is_general_flag_type(flag_type: str) -> bool:
    return CLASSIFICATION.flag_types.get(flag_type) is DataClass.GENERAL


GENERAL_NEED_CATEGORIES: tuple[str, ...] = tuple(
    sorted(c for c in CLASSIFICATION.need_categories if is_general_need(c))
)
GENERAL_FLAG_TYPES: tuple[str, ...] = tuple(
    sorted(t for t in CLASSIFICATION.flag_types if is_general_flag_type(t))
)


def flag_travels_general(flag_type: str, *, severity: str) -> bool:
    """A flag goes on the general topic only when its type is general and it is no crisis: a
    crisis flag's type can reveal a protected answer (a `safety` crisis from a suicide question),
    so every crisis flag travels on the protected topic, where notifications escalates it."""
    return is_general_flag_type(flag_type) and severity != "crisis"


# Every field each event type may carry, and which vocabulary classifies it (reviewed data).
FIELDS_PATH = Path(__file__).resolve().parent / "fields.json"
