-- Every resource of every kind, keyed by (type, mesh, name).
-- Global kinds use mesh '' so the key has no NULLs. "C" collation keeps list
-- order byte-wise, the same as the embedded store, whatever the database locale.
CREATE TABLE resources (
    type              TEXT COLLATE "C" NOT NULL,
    mesh              TEXT COLLATE "C" NOT NULL,
    name              TEXT COLLATE "C" NOT NULL,
    spec              JSONB  NOT NULL,
    labels            JSONB  NOT NULL,
    version           BIGINT NOT NULL,
    creation_time     BIGINT NOT NULL, -- microseconds since the Unix epoch, UTC
    modification_time BIGINT NOT NULL,
    PRIMARY KEY (type, mesh, name)
);

CREATE INDEX resources_by_mesh ON resources (mesh);
CREATE INDEX resources_labels ON resources USING GIN (labels jsonb_path_ops);

-- Change log behind LISTEN/NOTIFY: a listener that lost its connection reads
-- what it missed from here. Rows are pruned after an hour.
CREATE TABLE resource_events (
    seq        BIGSERIAL PRIMARY KEY,
    op         TEXT NOT NULL, -- 'c' created, 'u' updated, 'd' deleted
    type       TEXT NOT NULL,
    mesh       TEXT NOT NULL,
    name       TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX resource_events_by_time ON resource_events (created_at);
