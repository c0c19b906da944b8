-- Sundial's cluster metadata, version 10 (docs/cluster.md, "Listing
-- names"): a shard's rows found without scanning every database's, for
-- the sweep a new owner makes of databases the shard no longer holds.
CREATE INDEX series_names_by_shard ON series_names (shard, database);
