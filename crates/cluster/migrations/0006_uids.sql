-- Sundial's cluster metadata, version 6 (docs/cluster.md, "UIDs"):
-- OpenTSDB's UIDs, shared by every node. Per database and kind (0 metric,
-- 1 tag key, 2 tag value) each name has a number from the kind's counter,
-- never reused; a number a lost race took stays unused.
CREATE TABLE uids (
    database     text NOT NULL,
    kind         smallint NOT NULL,
    name         text NOT NULL,
    uid          integer NOT NULL,
    created_secs bigint NOT NULL,
    PRIMARY KEY (database, kind, name),
    UNIQUE (database, kind, uid)
);

CREATE TABLE uid_counters (
    database text NOT NULL,
    kind     smallint NOT NULL,
    next     integer NOT NULL,
    PRIMARY KEY (database, kind)
);
