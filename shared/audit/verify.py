"""Checking a service's audit trail: every chain row by row, then against signed checkpoints.

What each finding means, and why it can be told apart:
- **rewritten from seq N (to seq M)**: rows whose hash is not the HMAC of their content and
  their stored previous hash under the key they name: edited, or forged by someone without the
  key (re-hashing with plain SHA-256 is what such a person can do). A stretch ends at the next
  row whose own HMAC holds again.
- **rows deleted between seq A and seq B**: the row at B is authentic but links to a hash the
  chain no longer has (the HMAC covers the link, so the link cannot be moved). `seq` is one
  identity over all chains, so a gap in the numbers alone proves nothing (a rolled-back insert
  leaves one); the broken link is what shows the gap.
- **rows deleted after seq N (tail)**: a signed checkpoint saw the chain at a seq (and hash)
  the database no longer has. Without a checkpoint a deleted tail leaves a shorter chain that
  is whole, which is why the worker publishes checkpoints.
- **key not held**: rows name a key id the verifier was not given (after a rotation, pass the
  retired keys); they cannot be checked.

Legacy rows (no key id, plain SHA-256, written before keys existed) verify by recomputation,
which anyone can do; so one is accepted only below the table's first keyed row (`seq` grows
with time, and every row written since the upgrade is keyed). A legacy row above it is a
rewrite.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

import asyncpg

from shared.audit.checkpoints import CheckpointedHead
from shared.audit.keys import ChainKeys
from shared.audit.log import ENTRY_COLUMNS, GENESIS, entry_from_row


class BreakKind(StrEnum):
    REWRITTEN = "rewritten"
    DELETED = "deleted"
    DELETED_TAIL = "deleted_tail"
    KEY_NOT_HELD = "key_not_held"


@dataclass(frozen=True)
class ChainBreak:
    """One finding. `seq`: where it starts (the first rewritten row; the first row after a
    gap; the newest row left before a deleted tail, 0 if none). `until`: the last rewritten
    row; the row before a gap (None: the chain's first rows); the seq a checkpoint saw."""

    chain: int
    seq: int
    kind: BreakKind
    until: int | None = None
    key_id: str | None = None

    def describe(self) -> str:
        if self.kind is BreakKind.REWRITTEN:
            end = f" to seq {self.until}" if self.until not in (None, self.seq) else ""
            return f"rewritten from seq {self.seq}{end}"
        if self.kind is BreakKind.DELETED:
            if self.until is None:
                return f"rows deleted before seq {self.seq} (the chain's first rows)"
            return f"rows deleted between seq {self.until} and seq {self.seq}"
        if self.kind is BreakKind.DELETED_TAIL:
            return (
                f"rows deleted after seq {self.seq} (tail): a signed checkpoint saw the chain "
                f"at seq {self.until}"
            )
        return f"rows from seq {self.seq} name key {self.key_id!r}, which was not given"


@dataclass
class _Chain:
    """What the walk remembers about one chain."""

    expected: str = GENESIS
    last_seq: int | None = None
    stretch: tuple[int, int] | None = None  # a rewritten stretch still open: (first, last)
    keys_not_held: set[str] = field(default_factory=set)
    # For the chain's checkpoint: the row at its seq (hash), the newest row before it.
    checkpoint_hash: str | None = None
    before_checkpoint: int | None = None
    after_checkpoint: int | None = None


async def verify_chains(
    connection: asyncpg.Connection,
    keys: ChainKeys,
    checkpoints: Mapping[int, CheckpointedHead] | None = None,
) -> list[ChainBreak]:
    """Check every chain of the audit_log on the connection's search_path, and each chain's
    newest checkpointed head (chain -> head) if given. Findings ordered by chain, then seq."""
    checkpoints = checkpoints or {}
    snapshot = (
        contextlib.nullcontext()
        if connection.is_in_transaction()
        else connection.transaction(isolation="repeatable_read", readonly=True)
    )
    async with snapshot:
        first_keyed = await connection.fetchval(
            "SELECT min(seq) FROM audit_log WHERE key_id IS NOT NULL"
        )
        walk = _Walk(keys, first_keyed, checkpoints)
        cursor = connection.cursor(
            f"SELECT seq, chain, prev_hash, hash, key_id, {ENTRY_COLUMNS} FROM audit_log "
            "ORDER BY seq"
        )
        async for row in cursor:
            walk.row(row)
    return sorted(walk.finish(), key=lambda found: (found.chain, found.seq))


class _Walk:
    def __init__(
        self,
        keys: ChainKeys,
        first_keyed: int | None,
        checkpoints: Mapping[int, CheckpointedHead],
    ) -> None:
        self.keys = keys
        self.first_keyed = first_keyed
        self.checkpoints = checkpoints
        self.chains: dict[int, _Chain] = {}
        self.breaks: list[ChainBreak] = []

    def row(self, row: asyncpg.Record) -> None:
        number, seq = row["chain"], row["seq"]
        chain = self.chains.setdefault(number, _Chain())
        self._note_checkpoint(number, chain, row)
        if self._authentic(number, chain, row):
            if chain.stretch is not None:
                self._close(number, chain)
            elif row["prev_hash"] != chain.expected:
                self.breaks.append(ChainBreak(number, seq, BreakKind.DELETED, chain.last_seq))
        else:
            first = chain.stretch[0] if chain.stretch else seq
            chain.stretch = (first, seq)
        chain.expected = row["hash"]
        chain.last_seq = seq

    def _authentic(self, number: int, chain: _Chain, row: asyncpg.Record) -> bool:
        key_id: str | None = row["key_id"]
        if key_id is None and self.first_keyed is not None and row["seq"] > self.first_keyed:
            return False
        try:
            return self.keys.verifies(
                key_id, row["prev_hash"], entry_from_row(row).canonical(), row["hash"]
            )
        except KeyError:
            assert key_id is not None
            if key_id not in chain.keys_not_held:
                chain.keys_not_held.add(key_id)
                self.breaks.append(
                    ChainBreak(number, row["seq"], BreakKind.KEY_NOT_HELD, key_id=key_id)
                )
            return True  # unknown, not disproved: keep checking the links around it

    def _note_checkpoint(self, number: int, chain: _Chain, row: asyncpg.Record) -> None:
        head = self.checkpoints.get(number)
        if head is None:
            return
        if row["seq"] < head.seq:
            chain.before_checkpoint = row["seq"]
        elif row["seq"] == head.seq:
            chain.checkpoint_hash = row["hash"]
        elif chain.after_checkpoint is None:
            chain.after_checkpoint = row["seq"]

    def _close(self, number: int, chain: _Chain) -> None:
        assert chain.stretch is not None
        first, last = chain.stretch
        self.breaks.append(ChainBreak(number, first, BreakKind.REWRITTEN, last))
        chain.stretch = None

    def finish(self) -> list[ChainBreak]:
        for number, chain in self.chains.items():
            if chain.stretch is not None:
                self._close(number, chain)
        for number, head in self.checkpoints.items():
            self._check_checkpoint(number, head, self.chains.get(number, _Chain()))
        return self.breaks

    def _check_checkpoint(self, number: int, head: CheckpointedHead, chain: _Chain) -> None:
        if chain.checkpoint_hash == head.hash:
            return
        if chain.checkpoint_hash is not None:
            # The row is there with another hash: a rewrite, unless already reported as one.
            if not any(
                found.chain == number
                and found.kind is BreakKind.REWRITTEN
                and found.seq <= head.seq <= (found.until or found.seq)
                for found in self.breaks
            ):
                self.breaks.append(ChainBreak(number, head.seq, BreakKind.REWRITTEN, head.seq))
        elif chain.after_checkpoint is None:
            self.breaks.append(
                ChainBreak(number, chain.before_checkpoint or 0, BreakKind.DELETED_TAIL, head.seq)
            )
        else:
            # Rows were deleted up to the checkpointed head and newer rows appended after it.
            gap = ChainBreak(
                number, chain.after_checkpoint, BreakKind.DELETED, chain.before_checkpoint
            )
            if gap not in self.breaks:
                self.breaks.append(gap)
