-- Sundial's cluster metadata, version 8 (docs/cluster.md, "Field
-- kinds"): the kind of each field of each metric, claimed by the first
-- shard that writes it, so every shard of a database agrees as a single
-- node's one catalog does. 0 numeric, 1 string, 2 bytes.
CREATE TABLE field_kinds (
    database text NOT NULL,
    metric text NOT NULL,
    field text NOT NULL,
    kind smallint NOT NULL,
    PRIMARY KEY (database, metric, field)
);
