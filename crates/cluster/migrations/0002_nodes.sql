-- Sundial's cluster metadata, version 2 (docs/cluster.md): the nodes that
-- are alive. Each node renews its row while it runs; a row whose expiry
-- has passed is a node that stopped or can no longer reach PostgreSQL.
CREATE TABLE nodes (
    node_id    text PRIMARY KEY,
    role       text NOT NULL,
    -- The address peers reach the node at (host:port).
    advertise  text NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX nodes_by_role ON nodes (role, expires_at);
