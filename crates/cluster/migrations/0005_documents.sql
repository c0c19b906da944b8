-- Sundial's cluster metadata, version 5 (docs/cluster.md, "Shared
-- metadata"): documents every node shares, each replaced whole under
-- optimistic concurrency (a store names the version it replaces).
-- BlueKing's groups and data ids are the first.
CREATE TABLE documents (
    name    text PRIMARY KEY,
    version bigint NOT NULL,
    body    bytea NOT NULL
);
