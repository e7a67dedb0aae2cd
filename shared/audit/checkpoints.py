"""Signed checkpoints of every audit chain head, taken by each service's worker.

The chain's HMAC stops a superuser from re-chaining rows after an edit or a deletion in the
middle, but deleting a chain's newest rows leaves a shorter chain that is still whole. A
checkpoint remembers each chain's head (seq and hash) outside the database, signed, in two
places: the `casework.audit` topic (an `AuditCheckpoint` event through the outbox, for a
SIEM) and a JSON-lines file that `casework audit-verify --checkpoints FILE` reads. A head the
database no longer has is a deleted tail.

A checkpoint is taken when the worker starts and then every `audit_checkpoint_seconds`, and
skipped while the heads have not moved since the last one this process took (nothing new to
vouch for; `taken_at` of the last one still says when the heads were last seen).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from shared.audit.log import CHAINS
from shared.audit.signing import checkpoint_private_key, fingerprint, sign, verifies
from shared.db.database import Database
from shared.events.contracts import AuditCheckpoint, ChainHead
from shared.messaging.outbox import unit_of_work
from shared.settings import Settings

Clock = Callable[[], datetime]

# One index probe per chain, newest row first.
_HEADS = """
SELECT h.chain, h.seq, h.hash
FROM generate_series(0, $1 - 1) AS c(chain),
    LATERAL (SELECT chain, seq, hash FROM audit_log WHERE chain = c.chain
             ORDER BY seq DESC LIMIT 1) AS h
ORDER BY h.chain
"""


async def read_heads(connection: asyncpg.Connection) -> list[ChainHead]:
    rows = await connection.fetch(_HEADS, CHAINS)
    return [ChainHead(chain=row["chain"], seq=row["seq"], hash=row["hash"]) for row in rows]


def signed_checkpoint(
    key: Ed25519PrivateKey, *, service: str, heads: list[ChainHead], taken_at: datetime
) -> AuditCheckpoint:
    unsigned = AuditCheckpoint(
        checkpoint_id=uuid4(),
        service=service,
        taken_at=taken_at,
        heads=heads,
        signing_key=fingerprint(key.public_key()),
        signature="",
    )
    signature = sign(key, unsigned.model_dump(mode="json"))
    return unsigned.model_copy(update={"signature": signature})


def append_line(path: Path, checkpoint: AuditCheckpoint) -> None:
    """One JSON line, written with one append and synced: several workers may share a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(checkpoint.model_dump(mode="json"), sort_keys=True) + "\n").encode()
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(descriptor, line)
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class Checkpointer:
    """A worker's loop: checkpoint the service's chain heads now and every interval."""

    def __init__(
        self,
        *,
        service: str,
        database: Database,
        settings: Settings,
        clock: Clock = lambda: datetime.now(UTC),
    ) -> None:
        self.service = service
        self.database = database
        self.key = checkpoint_private_key(settings)
        self.path = settings.audit_checkpoint_path
        self.interval = settings.audit_checkpoint_seconds
        self.clock = clock
        self._last_heads: list[ChainHead] | None = None

    async def run(self) -> None:
        while True:
            await self.checkpoint()
            await asyncio.sleep(self.interval)

    async def checkpoint(self) -> AuditCheckpoint | None:
        """Take, publish and file one checkpoint; None when there is nothing new to vouch for."""
        async with unit_of_work(self.database) as uow:
            heads = await read_heads(uow.connection)
            if not heads or heads == self._last_heads:
                return None
            checkpoint = signed_checkpoint(
                self.key, service=self.service, heads=heads, taken_at=self.clock()
            )
            uow.publish(checkpoint)
        self._last_heads = heads
        try:
            await asyncio.to_thread(append_line, self.path, checkpoint)
        except BaseException:
            self._last_heads = None  # published but not filed: take the next one regardless
            raise
        return checkpoint


@dataclass(frozen=True)
class CheckpointedHead:
    """The newest head a valid checkpoint saw for one chain of one service."""

    service: str
    chain: int
    seq: int
    hash: str
    taken_at: str


@dataclass
class CheckpointFile:
    """What the checkpoint files say: the newest head per (service, chain), and the lines that
    could not be trusted (a bad signature or unreadable: reported, never used)."""

    heads: dict[tuple[str, int], CheckpointedHead]
    problems: list[str]

    def for_service(self, service: str) -> dict[int, CheckpointedHead]:
        return {chain: head for (name, chain), head in self.heads.items() if name == service}


def load_checkpoints(paths: Iterable[Path], key: Ed25519PublicKey) -> CheckpointFile:
    loaded = CheckpointFile(heads={}, problems=[])
    for path in paths:
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if line.strip():
                    _take(loaded, f"{path}:{number}", line, key)
    return loaded


def _take(loaded: CheckpointFile, where: str, line: str, key: Ed25519PublicKey) -> None:
    try:
        document: dict[str, Any] = json.loads(line)
        checkpoint = AuditCheckpoint.model_validate(document)
    except ValueError as error:
        loaded.problems.append(f"{where}: not a checkpoint ({type(error).__name__})")
        return
    if not verifies(key, document):
        loaded.problems.append(
            f"{where}: signature does not verify with the public key (altered or forged)"
        )
        return
    for head in checkpoint.heads:
        known = loaded.heads.get((checkpoint.service, head.chain))
        if known is None or head.seq > known.seq:
            loaded.heads[(checkpoint.service, head.chain)] = CheckpointedHead(
                checkpoint.service, head.chain, head.seq, head.hash, document["taken_at"]
            )
