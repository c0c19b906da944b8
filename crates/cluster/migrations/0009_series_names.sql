-- Sundial's cluster metadata, version 9 (docs/cluster.md, "Listing
-- names"): per database and shard, the names its series carry: a row
-- (metric, tag key, tag value) for each tag of a series, and (metric,
-- '', '') for each metric with a series. A shard's owner adds them once
-- the frame bringing them is applied, before it answers the write, and
-- removes them with the shard's last series carrying them, so the rows of all shards together are what a
-- single node's index lists. Listings without a time range read them.
-- Byte order ("C"), as the index sorts names.
CREATE TABLE series_names (
    database text COLLATE "C" NOT NULL,
    metric text COLLATE "C" NOT NULL,
    tag_key text COLLATE "C" NOT NULL,
    tag_value text COLLATE "C" NOT NULL,
    shard integer NOT NULL,
    PRIMARY KEY (database, metric, tag_key, tag_value, shard)
);
CREATE INDEX series_names_by_key ON series_names (database, tag_key, tag_value);
