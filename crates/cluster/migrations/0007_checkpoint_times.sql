-- Sundial's cluster metadata, version 7 (docs/cluster.md, "The
-- compactor", orphans): when each database of each shard last recorded a
-- checkpoint. An object of the shard that no manifest row, retirement or
-- checkpoint names, and that was uploaded before that moment, can no
-- longer be recorded by anyone: the compactor deletes it.
ALTER TABLE wal_positions ADD COLUMN checkpointed_at timestamptz NOT NULL DEFAULT now();
