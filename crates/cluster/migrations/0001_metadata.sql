-- Sundial's cluster metadata, version 1 (docs/cluster.md).

-- Who holds what, and since which epoch: the shards (`shard/<n>`) and the
-- compactor (`compactor`). The epoch grows by one at every change of
-- holder; a holder whose epoch is no longer the row's has been fenced.
CREATE TABLE leases (
    name       text PRIMARY KEY,
    holder     text NOT NULL,
    epoch      bigint NOT NULL,
    expires_at timestamptz NOT NULL
);

-- The block manifest: which objects are the blocks of each database and
-- shard, and their time range (queriers prune by it).
CREATE TABLE blocks (
    object_key text PRIMARY KEY,
    database   text NOT NULL,
    shard      integer NOT NULL,
    min_ts     bigint NOT NULL,
    max_ts     bigint NOT NULL,
    bytes      bigint NOT NULL,
    -- The epoch of the lease under which the block was recorded.
    epoch      bigint NOT NULL,
    CHECK (min_ts <= max_ts)
);
CREATE INDEX blocks_by_range ON blocks (database, shard, min_ts, max_ts);

-- How far each shard's write-ahead log is flushed into blocks: a new
-- owner replays from here.
CREATE TABLE wal_positions (
    database text NOT NULL,
    shard    integer NOT NULL,
    flushed  bigint NOT NULL,
    PRIMARY KEY (database, shard)
);
