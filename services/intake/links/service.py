"""Identity links: linking and unlinking records of the same person, and the rules around it.

Links form groups (A-B and B-C make one group A, B, C); a group's canonical record is its
oldest registration (clients.created_at, ties by id). Groups are kept as trees: two records
already in one group are not linked again, so undoing a link always leaves exactly two
groups. Every link write takes one transaction-scoped advisory lock, so link decisions (and
the order of their events, keyed by client) are serial.

Undoing a link by hand records a split marker for the pair. A split is never re-linked
automatically (`may_link_automatically`), nor manually without `override_split`; the check
spans the groups, so a split pair cannot be joined again through a third record either.

Access is untouched by links: each record keeps its own access facts, and reading a linked
record needs access to that record.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg

from services.intake.links.models import (
    ClientLinks,
    LinkCreated,
    LinkPublic,
    LinkReason,
    SplitPublic,
    Unlinked,
    UnlinkReason,
)
from shared.events.identity import ClientLinked, ClientUnlinked
from shared.messaging.outbox import UnitOfWork

# One lock for every link write in intake: links are rare, and serial decisions keep groups
# trees and events in decision order.
LINKS_LOCK_KEY = zlib.crc32(b"casework-intake:identity-links") - 2**31

_GROUP = """
WITH RECURSIVE member(id) AS (
    SELECT $1::uuid
    UNION
    SELECT CASE WHEN l.client_id = m.id THEN l.linked_client_id ELSE l.client_id END
    FROM identity_links l JOIN member m ON l.client_id = m.id OR l.linked_client_id = m.id
    WHERE l.unlinked_at IS NULL
)
SELECT c.id FROM member m JOIN clients c ON c.id = m.id ORDER BY c.created_at, c.id
"""

_LINK_COLUMNS = (
    "id, client_id, linked_client_id, reason, split_overridden, linked_by, linked_at, "
    "unlinked_at, unlinked_by, unlink_reason"
)
_SPLIT_COLUMNS = "id, link_id, client_id, linked_client_id, reason, split_by, split_at"


class LinkRefused(Exception):
    """A link or unlink the rules do not allow; the views answer it as a problem."""

    def __init__(self, status: int, slug: str, title: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.extra = extra


@dataclass(frozen=True)
class Group:
    """Linked records of one person, oldest registration first."""

    members: tuple[UUID, ...]

    @property
    def canonical(self) -> UUID:
        return self.members[0]

    def __contains__(self, client_id: object) -> bool:
        return client_id in self.members


async def group_of(connection: asyncpg.Connection, client_id: UUID) -> Group:
    """The client's group through current links (just the client when it has none)."""
    rows = await connection.fetch(_GROUP, client_id)
    return Group(tuple(row["id"] for row in rows) or (client_id,))


async def canonical_client_id(connection: asyncpg.Connection, client_id: UUID) -> UUID:
    return (await group_of(connection, client_id)).canonical


async def split_between(
    connection: asyncpg.Connection, first: Sequence[UUID], second: Sequence[UUID]
) -> SplitPublic | None:
    """The latest manual split between a record of `first` and one of `second`, if any."""
    row = await connection.fetchrow(
        f"SELECT {_SPLIT_COLUMNS} FROM identity_link_splits "
        "WHERE (client_id = ANY($1::uuid[]) AND linked_client_id = ANY($2::uuid[])) "
        "OR (client_id = ANY($2::uuid[]) AND linked_client_id = ANY($1::uuid[])) "
        "ORDER BY split_at DESC, id LIMIT 1",
        list(first),
        list(second),
    )
    return SplitPublic.model_validate(dict(row)) if row else None


async def may_link_automatically(connection: asyncpg.Connection, a: UUID, b: UUID) -> bool:
    """Whether an automatic linker (e.g. duplicate detection) may link records a and b.

    False when someone split them by hand: the two records, or any records of their two groups
    (linking a and b would join those too). False as well when there is nothing to link: the
    same record, or records already in one group. Only people override a split.
    """
    if a == b:
        return False
    group_a = await group_of(connection, a)
    if b in group_a:
        return False
    group_b = await group_of(connection, b)
    return await split_between(connection, group_a.members, group_b.members) is None


async def _lock(connection: asyncpg.Connection) -> None:
    await connection.execute("SELECT pg_advisory_xact_lock($1)", LINKS_LOCK_KEY)


async def _current_link(connection: asyncpg.Connection, a: UUID, b: UUID) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await connection.fetchrow(
        f"SELECT {_LINK_COLUMNS} FROM identity_links WHERE unlinked_at IS NULL AND "
        "((client_id = $1 AND linked_client_id = $2) OR (client_id = $2 AND linked_client_id = $1))",
        a,
        b,
    )
    return row


async def link_clients(
    uow: UnitOfWork,
    *,
    client_id: UUID,
    other_client_id: UUID,
    reason: LinkReason,
    override_split: bool,
    linked_by: str,
) -> LinkCreated:
    """Link two records of the same person and tell every member of the group its canonical id.
    Raises LinkRefused (the same record, records already linked, a split without override)."""
    if client_id == other_client_id:
        raise LinkRefused(
            422,
            "self-link",
            "A record cannot be linked to itself",
            "client_id and other_client_id are the same record.",
        )
    connection = uow.connection
    await _lock(connection)
    group = await group_of(connection, client_id)
    if other_client_id in group:
        direct = await _current_link(connection, client_id, other_client_id)
        raise LinkRefused(
            409,
            "already-linked",
            "Already linked",
            "These records are already linked."
            if direct
            else "These records are already linked through other records of their group.",
            canonical_client_id=str(group.canonical),
        )
    other_group = await group_of(connection, other_client_id)
    split = await split_between(connection, group.members, other_group.members)
    if split is not None and not override_split:
        raise LinkRefused(
            409,
            "split-records",
            "These records were split",
            f"Client {split.client_id} and client {split.linked_client_id} were split by "
            f"{split.split_by} on {split.split_at.isoformat()} ({split.reason.value}): they "
            "are not linked again unless you send override_split: true.",
            split_id=str(split.id),
        )
    now = datetime.now(UTC)
    row = await connection.fetchrow(
        "INSERT INTO identity_links (id, client_id, linked_client_id, reason, split_overridden, "
        f"linked_by, linked_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {_LINK_COLUMNS}",
        uuid4(),
        client_id,
        other_client_id,
        reason.value,
        split is not None,
        linked_by,
        now,
    )
    link = LinkPublic.model_validate(dict(row))
    joined = await group_of(connection, client_id)
    uow.publish(
        *(
            ClientLinked(
                link_id=link.id,
                client_id=member,
                linked_client_id=other_client_id if member in group else client_id,
                canonical_client_id=joined.canonical,
                linked_at=now,
            )
            for member in joined.members
        )
    )
    return LinkCreated(**link.model_dump(), canonical_client_id=joined.canonical)


async def unlink_clients(
    uow: UnitOfWork,
    *,
    client_id: UUID,
    other_client_id: UUID,
    reason: UnlinkReason,
    unlinked_by: str,
) -> Unlinked:
    """Undo the link between two records (kept, with who and when), record a split marker for
    the pair, and tell every member of both resulting groups its canonical id.
    Raises LinkRefused when the two records are not linked to each other."""
    connection = uow.connection
    await _lock(connection)
    current = await _current_link(connection, client_id, other_client_id)
    if current is None:
        group = await group_of(connection, client_id)
        raise LinkRefused(
            404,
            "not-linked",
            "Not linked",
            "These records are linked only through other records of their group: undo one of "
            "those links."
            if client_id != other_client_id and other_client_id in group
            else "These records are not linked.",
        )
    now = datetime.now(UTC)
    row = await connection.fetchrow(
        "UPDATE identity_links SET unlinked_at = $2, unlinked_by = $3, unlink_reason = $4 "
        f"WHERE id = $1 RETURNING {_LINK_COLUMNS}",
        current["id"],
        now,
        unlinked_by,
        reason.value,
    )
    link = LinkPublic.model_validate(dict(row))
    split_row = await connection.fetchrow(
        "INSERT INTO identity_link_splits (id, link_id, client_id, linked_client_id, reason, "
        f"split_by, split_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {_SPLIT_COLUMNS}",
        uuid4(),
        link.id,
        client_id,
        other_client_id,
        reason.value,
        unlinked_by,
        now,
    )
    split = SplitPublic.model_validate(dict(split_row))
    # A group is a tree: without this link it falls apart into exactly these two.
    group = await group_of(connection, client_id)
    other_group = await group_of(connection, other_client_id)
    uow.publish(
        *(
            ClientUnlinked(
                link_id=link.id,
                client_id=member,
                linked_client_id=other,
                canonical_client_id=side.canonical,
                unlinked_at=now,
            )
            for side, other in ((group, other_client_id), (other_group, client_id))
            for member in side.members
        )
    )
    return Unlinked(
        link=link,
        split=split,
        canonical_client_id=group.canonical,
        other_canonical_client_id=other_group.canonical,
    )


async def client_links(connection: asyncpg.Connection, client_id: UUID) -> ClientLinks:
    group = await group_of(connection, client_id)
    current = await connection.fetch(
        f"SELECT {_LINK_COLUMNS} FROM identity_links WHERE unlinked_at IS NULL "
        "AND client_id = ANY($1::uuid[]) ORDER BY linked_at, id",
        list(group.members),
    )
    history = await connection.fetch(
        f"SELECT {_LINK_COLUMNS} FROM identity_links WHERE unlinked_at IS NOT NULL "
        "AND (client_id = $1 OR linked_client_id = $1) ORDER BY unlinked_at DESC, id",
        client_id,
    )
    splits = await connection.fetch(
        f"SELECT {_SPLIT_COLUMNS} FROM identity_link_splits "
        "WHERE client_id = $1 OR linked_client_id = $1 ORDER BY split_at DESC, id",
        client_id,
    )
    return ClientLinks(
        client_id=client_id,
        canonical_client_id=group.canonical,
        group=list(group.members),
        links=[LinkPublic.model_validate(dict(row)) for row in current],
        history=[LinkPublic.model_validate(dict(row)) for row in history],
        splits=[SplitPublic.model_validate(dict(row)) for row in splits],
    )
