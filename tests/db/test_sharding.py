"""Hash sharding: jump consistent hash over N shards, each its own database."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator

import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from tenfold import DatabaseSettings, ShardSettings
from tenfold._errors import ConfigurationError
from tenfold.db import Database, jump_hash, key_hash
from tenfold.db._sharding import Shards
from tenfold.testing import PgCluster

from .conftest import CURSOR_SECRET

KEYS = [f"user-{i}" for i in range(10_000)]


def test_jump_hash_matches_the_papers_algorithm() -> None:
    """jump_hash gives the values other implementations of the paper publish."""
    assert jump_hash(123456, 1000) == 984
    assert jump_hash(256, 1024) == 520
    assert jump_hash(2**64 - 1, 1) == 0


def test_a_key_always_maps_to_the_same_shard() -> None:
    """Key hashing is fixed across processes and versions (pinned values), unlike hash()."""
    assert key_hash("user-1") == 0x29AA136EAA9C1DB3
    assert [Shards(range(4)).index(k) for k in ("user-1", "user-2", 42, b"x")] == [0, 0, 2, 2]
    assert all(Shards([0, 1]).index(k) == Shards([0, 1]).index(k) for k in KEYS[:100])


def test_ten_thousand_keys_split_evenly_over_two_shards() -> None:
    """10k keys over 2 shards: each shard gets 5000 +/- 5%."""
    counts = Counter(Shards([0, 1]).index(k) for k in KEYS)
    for shard in (0, 1):
        assert 4750 <= counts[shard] <= 5250


@pytest.mark.parametrize("n", [1, 2, 3, 5, 9])
def test_growing_by_one_shard_moves_about_one_in_n_plus_one_keys(n: int) -> None:
    """Going from N to N+1 shards moves ~1/(N+1) of keys, and only to the new shard."""
    before, after = Shards(range(n)), Shards(range(n + 1))
    moved = [k for k in KEYS if before.index(k) != after.index(k)]
    assert all(after.index(k) == n for k in moved)
    expected = len(KEYS) / (n + 1)
    assert abs(len(moved) - expected) <= 0.1 * expected


def test_key_types_are_part_of_the_key() -> None:
    """str, bytes, int and UUID keys hash by type; other types are refused."""
    ident = uuid.uuid4()
    assert key_hash(ident) == key_hash(uuid.UUID(str(ident)))
    assert key_hash("42") != key_hash(42)
    with pytest.raises(TypeError):
        key_hash(4.2)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        jump_hash(1, 0)


@pytest.fixture(scope="module")
def shard_dbs(pg_cluster: PgCluster) -> Iterator[list[str]]:
    """Two databases on the harness primary, each with the same ``accounts`` table."""
    names = [pg_cluster.create_database() for _ in range(2)]
    for name in names:
        pg_cluster.primary.psql("CREATE TABLE accounts (id text PRIMARY KEY)", db=name)
    yield names
    for name in names:
        pg_cluster.drop_database(name)


@pytest.fixture
async def sharded(pg_cluster: PgCluster, shard_dbs: list[str]) -> AsyncIterator[Database]:
    settings = DatabaseSettings(
        url=SecretStr(pg_cluster.primary.url(shard_dbs[0])),
        shards=[ShardSettings(url=SecretStr(pg_cluster.primary.url(n))) for n in shard_dbs],
        cursor_secret=CURSOR_SECRET,
    )
    db = Database(settings)
    await db.start()
    yield db
    await db.stop()


async def test_shard_sessions_write_each_key_to_its_own_database(
    sharded: Database, pg_cluster: PgCluster, shard_dbs: list[str]
) -> None:
    """Rows written through db.shard(key) land in the database jump hash picks for the key."""
    keys = [f"acct-{i}" for i in range(40)]
    for key in keys:
        async with sharded.shard(key).session() as write:
            await write.execute(sa.text("INSERT INTO accounts VALUES (:k)"), {"k": key})
    for index, name in enumerate(shard_dbs):
        stored = set(pg_cluster.primary.psql("SELECT id FROM accounts", db=name).split())
        assert stored == {k for k in keys if sharded.shards.index(k) == index}
        assert stored  # both shards got some
    async with sharded.shard("acct-7").session(readonly=True) as read:
        assert await read.scalar(sa.text("SELECT id FROM accounts WHERE id = 'acct-7'")) == "acct-7"


async def test_shard_without_shards_configured_is_a_configuration_error(
    tmp_path: object,
) -> None:
    """db.shard() on an unsharded database names the setting to set."""
    db = Database(DatabaseSettings(url=SecretStr("sqlite+aiosqlite://")))
    with pytest.raises(ConfigurationError, match="TENFOLD_DB__SHARDS"):
        db.shard("anything")
