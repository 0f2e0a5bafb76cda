-- The HTTP service's own tables, version 2: the pipeline catalog and API keys.

-- A stored pipeline: one row a (owner, name); its documents are the versions below.
CREATE TABLE catalog_pipelines (
    id             TEXT PRIMARY KEY,
    owner          TEXT NOT NULL,
    name           TEXT NOT NULL,
    latest_version INTEGER NOT NULL,
    description    TEXT,
    created_at     REAL NOT NULL,
    updated_at     REAL NOT NULL,
    UNIQUE (owner, name)
) WITHOUT ROWID;

-- Every version of a stored pipeline. An update adds a row and never rewrites one, and runs
-- keep their own snapshot (the engine's `pipelines` table), so deleting these harms no run.
CREATE TABLE catalog_versions (
    pipeline_id TEXT NOT NULL REFERENCES catalog_pipelines (id) ON DELETE CASCADE,
    version     INTEGER NOT NULL,
    document    TEXT NOT NULL,
    created_at  REAL NOT NULL,
    PRIMARY KEY (pipeline_id, version)
) WITHOUT ROWID;

-- API keys. Only a hash of each secret is kept; the token is shown once, when it is made.
CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    owner       TEXT NOT NULL,
    scope       TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    created_at  REAL NOT NULL,
    revoked_at  REAL
) WITHOUT ROWID;
