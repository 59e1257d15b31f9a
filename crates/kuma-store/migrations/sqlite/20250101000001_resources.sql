-- Every resource of every kind, keyed by (type, mesh, name).
-- Global kinds use mesh '' so the key has no NULLs.
CREATE TABLE resources (
    type              TEXT    NOT NULL,
    mesh              TEXT    NOT NULL,
    name              TEXT    NOT NULL,
    spec              TEXT    NOT NULL, -- JSON
    labels            TEXT    NOT NULL, -- JSON object of strings
    version           INTEGER NOT NULL,
    creation_time     INTEGER NOT NULL, -- microseconds since the Unix epoch, UTC
    modification_time INTEGER NOT NULL,
    PRIMARY KEY (type, mesh, name)
) WITHOUT ROWID;

-- Cascade delete of a mesh scans by mesh.
CREATE INDEX resources_by_mesh ON resources (mesh);
