"""Identity-link events (intake): two records are (no longer) the same person.

A link never merges records: each keeps its own id, data and access. Linked records form a
group whose canonical record is the oldest registration. Intake publishes one event per member
of every group a link or unlink touches, keyed by that member, so each consumer sets, for every
client reference it keeps, the canonical id (the client itself when it is in no group) in
the order intake decided it. Ids only.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import Field

from shared.events.contracts import EventData, Topic


class ClientLinked(EventData):
    """A client's record now belongs to a group of records of the same person."""

    event_type = "org.casework.intake.client.linked.v1"
    topic = Topic.INTAKE_CLIENTS
    aggregate_type = "client"
    source_service = "intake"
    summary = (
        "A client's record was linked (not merged) to another record of the same person; "
        "carries the group's canonical id for this client. Ids only."
    )

    link_id: UUID = Field(description="The link's id in intake.")
    client_id: UUID = Field(
        description="The client whose reference changes (the Kafka key): one event per member "
        "of the group the link formed."
    )
    linked_client_id: UUID = Field(
        description="The record client_id's group was linked to (the other end of the link)."
    )
    canonical_client_id: UUID = Field(
        description="The group's canonical record (its oldest registration); may be client_id."
    )
    linked_at: datetime = Field(description="When the link was recorded.")


class ClientUnlinked(EventData):
    """A link was undone: the client's group split in two."""

    event_type = "org.casework.intake.client.unlinked.v1"
    topic = Topic.INTAKE_CLIENTS
    aggregate_type = "client"
    source_service = "intake"
    summary = (
        "A link between two records was undone (they are not the same person, or it was "
        "entered in error); carries this client's canonical id after the unlink. Ids only."
    )

    link_id: UUID = Field(description="The link that was undone.")
    client_id: UUID = Field(
        description="The client whose reference changes (the Kafka key): one event per member "
        "of both groups the unlink left."
    )
    linked_client_id: UUID = Field(
        description="The record on the other side of the undone link, seen from client_id."
    )
    canonical_client_id: UUID = Field(
        description="client_id's canonical record after the unlink: client_id itself when it "
        "is linked to no other record any more."
    )
    unlinked_at: datetime = Field(description="When the link was undone.")


EVENTS: tuple[type[EventData], ...] = (ClientLinked, ClientUnlinked)
