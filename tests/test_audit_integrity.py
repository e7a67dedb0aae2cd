"""The audit trail against someone who can write the database but does not hold the keys.

Most tests work on a scratch schema shaped like intake's (the same migrated `audit_log` and
`outbox`, and the chain-head function), filled through the real append, so tampering there is
committed for `casework audit-verify` to see and touches no other test's trail.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.registry import SERVICES, TOPICS
from shared.audit.checkpoints import Checkpointer, load_checkpoints, read_heads
from shared.audit.keys import (
    AuditKeyError,
    ChainKeys,
    chain_keys,
    legacy_hash,
)
from shared.audit.log import GENESIS, AuditEntry, append, chain_claim_function, entry_from_row
from shared.audit.signing import checkpoint_public_key, verifies
from shared.audit.verify import BreakKind, ChainBreak, verify_chains
from shared.db.database import Database
from shared.events.contracts import AuditCheckpoint
from shared.http.app import create_app
from shared.settings import Settings
from shared.worker import Worker
from tests.support import Stack, eventually, header, read_topic

pytestmark = pytest.mark.asyncio

TAKEN_AT = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@dataclass
class Scratch:
    schema: str
    connection: asyncpg.Connection  # admin: may delete and update, as a superuser can

    async def rows(self) -> list[asyncpg.Record]:
        return list(
            await self.connection.fetch(f'SELECT * FROM "{self.schema}".audit_log ORDER BY seq')
        )

    def chains(self, rows: list[asyncpg.Record]) -> dict[int, list[asyncpg.Record]]:
        chains: dict[int, list[asyncpg.Record]] = {}
        for row in rows:
            chains.setdefault(row["chain"], []).append(row)
        return chains


@pytest.fixture
async def scratch(settings: Settings) -> AsyncIterator[Scratch]:
    schema = f"audit_scratch_{secrets.token_hex(4)}"
    connection = await asyncpg.connect(settings.database_url)
    try:
        await connection.execute(f'CREATE SCHEMA "{schema}"')
        for table in ("audit_log", "outbox"):
            await connection.execute(
                f'CREATE TABLE "{schema}".{table} (LIKE intake.{table} INCLUDING ALL)'
            )
        await connection.execute(chain_claim_function(schema))
        await connection.execute(f'SET search_path = "{schema}"')
        yield Scratch(schema, connection)
    finally:
        await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await connection.close()


def entry(actor: str) -> AuditEntry:
    return AuditEntry.new(
        actor_id=actor,
        actor_roles=["caseworker"],
        actor_organization_id="org-a",
        action="client.read",
        resource_type="client",
        resource_id=None,
        client_id=uuid.uuid4(),
        outcome="allowed",
        request_id=None,
        source_address="10.0.0.1",
        purpose="care-coordination",
        break_glass_reason=None,
    )


async def fill(scratch: Scratch, keys: ChainKeys, actors: list[str]) -> None:
    """One append (one request's records) per entry, each on the chain its id picks."""
    for actor in actors:
        async with scratch.connection.transaction():
            await append(
                scratch.connection, schema=scratch.schema, keys=keys, entries=[entry(actor)]
            )


async def rehash_with_sha256(scratch: Scratch, rows: list[asyncpg.Record]) -> None:
    """What someone without the key can do after deleting rows: re-link what follows with the
    only hash they can compute, starting from the last row they kept."""
    first = rows[0]
    kept = await scratch.connection.fetchval(
        "SELECT hash FROM audit_log WHERE chain = $1 AND seq < $2 ORDER BY seq DESC LIMIT 1",
        first["chain"],
        first["seq"],
    )
    previous = kept or GENESIS
    for row in rows:
        forged = legacy_hash(previous, entry_from_row(row).canonical())
        await scratch.connection.execute(
            "UPDATE audit_log SET prev_hash = $1, hash = $2 WHERE seq = $3",
            previous,
            forged,
            row["seq"],
        )
        previous = forged


async def run_verify(settings: Settings, *arguments: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "services.cli", "audit-verify", *arguments],
        env={"CASEWORK_DATABASE_URL": settings.database_url, "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
async def checkpointer(
    settings: Settings, scratch: Scratch, tmp_path: Path
) -> AsyncIterator[Checkpointer]:
    database = Database(settings.database_url, schema=scratch.schema, pool_size=2)
    await database.connect()
    try:
        yield Checkpointer(
            service=scratch.schema,
            database=database,
            settings=settings.model_copy(
                update={"audit_checkpoint_file": str(tmp_path / "checkpoints.jsonl")}
            ),
            clock=lambda: TAKEN_AT,
        )
    finally:
        await database.close()


async def test_an_untouched_trail_verifies_clean_against_its_checkpoints(
    settings: Settings, scratch: Scratch, checkpointer: Checkpointer
) -> None:
    keys = chain_keys(settings)
    await fill(scratch, keys, ["alice"] * 40)
    taken = await checkpointer.checkpoint()
    assert taken is not None

    rows = await scratch.rows()
    assert {row["key_id"] for row in rows} == {keys.current_id}
    assert [(head.chain, head.seq, head.hash) for head in taken.heads] == [
        (chain, chain_rows[-1]["seq"], chain_rows[-1]["hash"])
        for chain, chain_rows in sorted(scratch.chains(rows).items())
    ]
    result = await run_verify(settings, "--checkpoints", str(checkpointer.path), scratch.schema)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == (
        f"{scratch.schema}: audit trail intact, and agrees with {len(taken.heads)} "
        "checkpointed heads\n"
    )


async def test_deleting_a_chains_newest_rows_is_reported_as_a_deleted_tail(
    settings: Settings, scratch: Scratch, checkpointer: Checkpointer
) -> None:
    keys = chain_keys(settings)
    await fill(scratch, keys, ["alice"] * 64)
    assert await checkpointer.checkpoint() is not None
    chain, chain_rows = next(
        (chain, rows)
        for chain, rows in scratch.chains(await scratch.rows()).items()
        if len(rows) >= 3
    )
    survivor, deleted = chain_rows[-3], chain_rows[-2:]
    await scratch.connection.execute(
        "DELETE FROM audit_log WHERE seq = ANY($1::bigint[])", [row["seq"] for row in deleted]
    )

    # What is left is a whole chain: without a checkpoint, nothing shows.
    assert await verify_chains(scratch.connection, keys) == []
    result = await run_verify(settings, "--checkpoints", str(checkpointer.path), scratch.schema)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout == (
        f"{scratch.schema}: chain {chain}: rows deleted after seq {survivor['seq']} (tail): "
        f"a signed checkpoint saw the chain at seq {deleted[-1]['seq']}\n"
    )


async def test_deleting_the_tail_then_appending_more_is_still_reported(
    settings: Settings, scratch: Scratch, checkpointer: Checkpointer
) -> None:
    keys = chain_keys(settings)
    await fill(scratch, keys, ["alice"] * 48)
    assert await checkpointer.checkpoint() is not None
    heads = {head.chain: head for head in await read_heads(scratch.connection)}
    rows = scratch.chains(await scratch.rows())
    chain = next(chain for chain, chain_rows in rows.items() if len(chain_rows) >= 2)
    await scratch.connection.execute("DELETE FROM audit_log WHERE seq = $1", heads[chain].seq)
    # The service goes on appending after the deletion: the new rows link to what is left.
    while True:
        await fill(scratch, keys, ["alice"])
        newest = (await scratch.rows())[-1]
        if newest["chain"] == chain:
            break
    checkpoints = load_checkpoints([checkpointer.path], checkpoint_public_key(settings))

    found = await verify_chains(scratch.connection, keys, checkpoints.for_service(scratch.schema))
    assert found == [ChainBreak(chain, newest["seq"], BreakKind.DELETED, rows[chain][-2]["seq"])]
    assert found[0].describe() == (
        f"rows deleted between seq {rows[chain][-2]['seq']} and seq {newest['seq']}"
    )


async def test_deleting_an_actors_rows_and_rehashing_the_rest_is_reported_as_rewritten(
    settings: Settings, scratch: Scratch
) -> None:
    keys = chain_keys(settings)
    await fill(scratch, keys, ["alice", "bob", "carol"] * 20)
    expected: list[ChainBreak] = []
    for chain, chain_rows in sorted(scratch.chains(await scratch.rows()).items()):
        bobs = [row for row in chain_rows if row["actor_id"] == "bob"]
        if not bobs:
            continue
        await scratch.connection.execute(
            "DELETE FROM audit_log WHERE seq = ANY($1::bigint[])", [row["seq"] for row in bobs]
        )
        after = [
            row for row in chain_rows if row["seq"] > bobs[0]["seq"] and row["actor_id"] != "bob"
        ]
        if after:
            await rehash_with_sha256(scratch, after)
            expected.append(
                ChainBreak(chain, after[0]["seq"], BreakKind.REWRITTEN, after[-1]["seq"])
            )
    assert expected, "bob has a row followed by another's on some chain"

    assert await verify_chains(scratch.connection, keys) == expected
    result = await run_verify(settings, scratch.schema)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"{scratch.schema}: chain {found.chain}: {found.describe()}" for found in expected
    ]
    assert all("rewritten from seq" in line for line in result.stdout.splitlines())


async def test_an_edited_row_is_a_rewritten_stretch_of_one(
    settings: Settings, scratch: Scratch
) -> None:
    keys = chain_keys(settings)
    await fill(scratch, keys, ["alice"] * 40)
    chain, chain_rows = next(
        (chain, rows)
        for chain, rows in scratch.chains(await scratch.rows()).items()
        if len(rows) >= 3
    )
    edited = chain_rows[1]
    await scratch.connection.execute(
        "UPDATE audit_log SET actor_id = 'someone-else' WHERE seq = $1", edited["seq"]
    )

    assert await verify_chains(scratch.connection, keys) == [
        ChainBreak(chain, edited["seq"], BreakKind.REWRITTEN, edited["seq"])
    ]


async def test_rows_from_before_the_keys_still_verify_and_cannot_be_forged_after_them(
    settings: Settings, scratch: Scratch
) -> None:
    keys = chain_keys(settings)
    await fill(scratch, keys, ["alice"] * 40)
    rows = await scratch.rows()
    # The rows as the previous version wrote them: no key id, plain SHA-256 chains.
    await scratch.connection.execute("UPDATE audit_log SET key_id = NULL")
    for chain_rows in scratch.chains(rows).values():
        await rehash_with_sha256(scratch, chain_rows)
    assert await verify_chains(scratch.connection, keys) == []

    # After the upgrade: keyed rows follow on the same chains, and the trail verifies.
    await fill(scratch, keys, ["alice"] * 40)
    assert await verify_chains(scratch.connection, keys) == []

    # A keyed row turned back into a legacy one (what anyone can compute) is a rewrite.
    newest = (await scratch.rows())[-1]
    assert newest["key_id"] == keys.current_id
    await scratch.connection.execute(
        "UPDATE audit_log SET key_id = NULL WHERE seq = $1", newest["seq"]
    )
    await rehash_with_sha256(scratch, [newest])
    assert await verify_chains(scratch.connection, keys) == [
        ChainBreak(newest["chain"], newest["seq"], BreakKind.REWRITTEN, newest["seq"])
    ]


async def test_rows_sealed_with_a_retired_key_verify_while_that_key_is_given(
    scratch: Scratch,
) -> None:
    old = ChainKeys(current_id="k1", keys={"k1": secrets.token_bytes(32)})
    new = ChainKeys(current_id="k2", keys={"k1": old.keys["k1"], "k2": secrets.token_bytes(32)})
    await fill(scratch, old, ["alice"] * 10)
    await fill(scratch, new, ["alice"] * 10)
    rows = await scratch.rows()
    assert [row["key_id"] for row in rows] == ["k1"] * 10 + ["k2"] * 10

    assert await verify_chains(scratch.connection, new) == []
    without_old = ChainKeys(current_id="k2", keys={"k2": new.keys["k2"]})
    found = await verify_chains(scratch.connection, without_old)
    assert {(item.kind, item.key_id) for item in found} == {(BreakKind.KEY_NOT_HELD, "k1")}
    assert len(found) == len({row["chain"] for row in rows[:10]})
    # A wrong key under the right id is as good as none: every row is unauthentic.
    wrong = ChainKeys(current_id="k2", keys={"k1": secrets.token_bytes(32), "k2": new.keys["k2"]})
    assert all(
        item.kind is BreakKind.REWRITTEN for item in await verify_chains(scratch.connection, wrong)
    )


async def test_a_checkpoint_signature_verifies_with_the_public_key_and_fails_when_tampered(
    settings: Settings, scratch: Scratch, checkpointer: Checkpointer
) -> None:
    await fill(scratch, chain_keys(settings), ["alice"] * 20)
    taken = await checkpointer.checkpoint()
    assert taken is not None
    public = checkpoint_public_key(settings)
    [line] = checkpointer.path.read_text().splitlines()
    document = json.loads(line)
    assert document == taken.model_dump(mode="json")
    assert verifies(public, document)

    # Another seq for the first head (one past it: a seq below 1 would not even be a
    # checkpoint, whatever the chain's length).
    forged = {
        **document,
        "heads": [
            {**document["heads"][0], "seq": document["heads"][0]["seq"] + 1},
            *document["heads"][1:],
        ],
    }
    assert not verifies(public, forged)
    assert not verifies(public, {**document, "taken_at": "2026-11-30T12:00:00Z"})
    assert not verifies(public, {**document, "signature": document["signature"][::-1]})
    assert not verifies(Ed25519PrivateKey.generate().public_key(), document)

    # A forged line in the file is reported and not used.
    with checkpointer.path.open("a") as lines:
        lines.write(json.dumps(forged) + "\n")
    result = await run_verify(settings, "--checkpoints", str(checkpointer.path), scratch.schema)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"checkpoint {checkpointer.path}:2: signature does not verify with the public key "
        "(altered or forged)",
        f"{scratch.schema}: audit trail intact, and agrees with {len(taken.heads)} "
        "checkpointed heads",
    ]


async def test_the_checkpoint_loop_runs_on_its_schedule_and_skips_unmoved_heads(
    settings: Settings, scratch: Scratch, tmp_path: Path
) -> None:
    keys = chain_keys(settings)
    await fill(scratch, keys, ["alice"] * 5)
    path = tmp_path / "loop.jsonl"
    database = Database(settings.database_url, schema=scratch.schema, pool_size=2)
    await database.connect()
    checkpointer = Checkpointer(
        service=scratch.schema,
        database=database,
        settings=settings.model_copy(
            update={"audit_checkpoint_file": str(path), "audit_checkpoint_seconds": 0.02}
        ),
    )

    async def lines(count: int) -> list[str] | None:
        found = path.read_text().splitlines() if path.exists() else []
        return found if len(found) >= count else None

    loop = asyncio.create_task(checkpointer.run())
    try:
        [first] = await eventually(lambda: lines(1))
        # Heads that have not moved are not checkpointed again.
        assert await checkpointer.checkpoint() is None
        assert len(path.read_text().splitlines()) == 1
        await fill(scratch, keys, ["alice"])
        second = (await eventually(lambda: lines(2)))[1]
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
        await database.close()
    newest = (await scratch.rows())[-1]
    heads = {head["chain"]: head for head in json.loads(second)["heads"]}
    assert heads[newest["chain"]] == {
        "chain": newest["chain"],
        "seq": newest["seq"],
        "hash": newest["hash"],
    }
    assert json.loads(first)["checkpoint_id"] != json.loads(second)["checkpoint_id"]


async def test_checkpoints_are_published_on_the_audit_topic(
    stack: Stack, settings: Settings
) -> None:
    response = await stack.api["intake"].get("/v1/clients")
    assert response.status_code == 200
    taken = await stack.workers["intake"].checkpointer.checkpoint()
    assert taken is not None
    marker = str(taken.checkpoint_id).encode()

    records = await read_topic(
        settings,
        "casework.audit",
        until=lambda records: any(marker in (r.value or b"") for r in records),
    )
    [published] = [r for r in records if marker in (r.value or b"")]
    assert header(published, "ce_type") == AuditCheckpoint.event_type
    assert header(published, "ce_source") == "/casework/intake"
    assert published.key == b"intake"
    document = json.loads(published.value or b"")
    # What a SIEM does with the public key alone.
    assert verifies(checkpoint_public_key(settings), document)
    assert document["heads"] == [head.model_dump() for head in taken.heads]
    assert set(document) == {
        "checkpoint_id", "service", "taken_at", "heads", "signing_key", "signature"
    }  # fmt: skip
    # The heads were the intake trail's at that moment (the list above was audited first).
    connection = await asyncpg.connect(settings.database_url)
    try:
        for head in taken.heads:
            row = await connection.fetchrow(
                "SELECT chain, hash FROM intake.audit_log WHERE seq = $1", head.seq
            )
            assert row is not None
            assert (row["chain"], row["hash"]) == (head.chain, head.hash)
    finally:
        await connection.close()


async def test_production_mode_refuses_to_start_without_real_keys(settings: Settings) -> None:
    production = settings.model_copy(
        update={"auth_mode": "jwks", "jwks_url": "https://idp.example/.well-known/jwks.json"}
    )
    spec = SERVICES["intake"]
    with pytest.raises(AuditKeyError, match="CASEWORK_AUDIT_HMAC_KEY is required"):
        create_app(spec, production)
    with pytest.raises(AuditKeyError, match="CASEWORK_AUDIT_CHECKPOINT_PRIVATE_KEY is required"):
        Worker(spec, production, topics=TOPICS, serve_http=False)
    with pytest.raises(AuditKeyError, match="development key"):
        chain_keys(
            production.model_copy(
                update={"audit_hmac_key": "casework-development-audit-key-not-for-production"}
            )
        )
    with pytest.raises(AuditKeyError, match="shorter than 32 bytes"):
        chain_keys(production.model_copy(update={"audit_hmac_key": "too-short"}))

    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    configured = production.model_copy(
        update={
            "audit_hmac_key": secrets.token_urlsafe(32),
            "audit_hmac_key_id": "2026-11",
            "audit_checkpoint_private_key": pem,
        }
    )
    assert create_app(spec, configured).state.audit_log.keys.current_id == "2026-11"
    assert Worker(spec, configured, topics=TOPICS, serve_http=False).checkpointer.key is not None
