-- Sundial's cluster metadata, version 3 (docs/cluster.md): where the state
-- a shard's database was flushed with (series catalog, block list) lies in
-- the object store, so a new owner can open the blocks the position
-- covers. Recorded with the position, in the same transaction.
-- The objects' keys, below the state group of the shard's database.
ALTER TABLE wal_positions ADD COLUMN checkpoint text[] NOT NULL DEFAULT '{}';
