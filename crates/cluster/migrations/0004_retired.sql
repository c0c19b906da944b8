-- Sundial's cluster metadata, version 4 (docs/cluster.md, "The compactor"):
-- objects of blocks a shard's owner no longer lists (merged by a
-- compaction, or expired), recorded by the checkpoint that took them out
-- of `blocks`. The compactor deletes each object once it has been retired
-- longer than its grace period (a query may still be reading it), then
-- the row.
CREATE TABLE retired_objects (
    object_key text PRIMARY KEY,
    retired_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX retired_objects_by_age ON retired_objects (retired_at);
