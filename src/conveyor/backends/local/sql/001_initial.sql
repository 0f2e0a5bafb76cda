-- The embedded engine's schema, version 1.

CREATE TABLE pipelines (
    hash        TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    version     TEXT NOT NULL,
    document    TEXT NOT NULL,
    created_at  REAL NOT NULL
) WITHOUT ROWID;

CREATE TABLE runs (
    id              TEXT PRIMARY KEY,
    pipeline_hash   TEXT NOT NULL REFERENCES pipelines (hash),
    pipeline_name   TEXT NOT NULL,
    kind            TEXT NOT NULL DEFAULT 'pipeline',
    status          TEXT NOT NULL,
    params          TEXT NOT NULL,
    outputs         TEXT,
    error           TEXT,
    failed_step     TEXT,
    created_at      REAL NOT NULL,
    started_at      REAL,
    finished_at     REAL,
    deadline_at     REAL,
    idempotency_key TEXT UNIQUE,
    owner           TEXT,
    labels          TEXT,
    retry_of        TEXT
) WITHOUT ROWID;

CREATE INDEX runs_by_created ON runs (created_at);
CREATE INDEX runs_by_status ON runs (status, created_at);
CREATE INDEX runs_by_pipeline ON runs (pipeline_name, created_at);

-- One row a step (idx = -1) and one a fan-out item (idx >= 0).
CREATE TABLE units (
    run_id  TEXT NOT NULL,
    step_id TEXT NOT NULL,
    idx     INTEGER NOT NULL,
    status  TEXT NOT NULL,
    data    TEXT NOT NULL,
    PRIMARY KEY (run_id, step_id, idx)
) WITHOUT ROWID;

-- The timeline of a run: every status change, progress report and applied event.
CREATE TABLE run_events (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id  TEXT NOT NULL,
    at      REAL NOT NULL,
    kind    TEXT NOT NULL,
    step_id TEXT,
    idx     INTEGER,
    data    TEXT NOT NULL
);

CREATE INDEX run_events_by_run ON run_events (run_id, seq);

-- Units waiting for events, by correlation id.
CREATE TABLE waits (
    correlation_id TEXT NOT NULL,
    run_id         TEXT NOT NULL,
    step_id        TEXT NOT NULL,
    idx            INTEGER NOT NULL,
    attempt        INTEGER NOT NULL,
    since          REAL NOT NULL,
    PRIMARY KEY (correlation_id, run_id, step_id, idx)
) WITHOUT ROWID;

CREATE INDEX waits_by_run ON waits (run_id);

-- Durable timers: retry backoffs, wait deadlines, sleeps (step_id '' is the run's deadline).
CREATE TABLE timers (
    run_id  TEXT NOT NULL,
    step_id TEXT NOT NULL,
    idx     INTEGER NOT NULL,
    fire_at REAL NOT NULL,
    PRIMARY KEY (run_id, step_id, idx)
) WITHOUT ROWID;

CREATE INDEX timers_by_due ON timers (fire_at);

-- Every accepted event. status: pending (nobody waits yet), routed, unroutable, expired.
CREATE TABLE events (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    id             TEXT NOT NULL UNIQUE,
    correlation_id TEXT,
    type           TEXT NOT NULL,
    source         TEXT,
    data           TEXT NOT NULL,
    received_at    REAL NOT NULL,
    expires_at     REAL,
    status         TEXT NOT NULL
);

CREATE INDEX events_by_correlation ON events (correlation_id, status);
CREATE INDEX events_by_status ON events (status, received_at);

-- An event planned for a waiting unit, and whether on_event's result has been applied.
CREATE TABLE deliveries (
    event_seq INTEGER NOT NULL REFERENCES events (seq),
    run_id    TEXT NOT NULL,
    step_id   TEXT NOT NULL,
    idx       INTEGER NOT NULL,
    attempt   INTEGER NOT NULL,
    status    TEXT NOT NULL,
    PRIMARY KEY (event_seq, run_id, step_id, idx)
) WITHOUT ROWID;

CREATE INDEX deliveries_by_status ON deliveries (status);

-- Requests from other processes (CLI, another client) for the engine that holds the database.
CREATE TABLE inbox (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT NOT NULL,
    payload    TEXT NOT NULL,
    created_at REAL NOT NULL
);

-- Which engine process holds the database.
CREATE TABLE engine_lock (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    pid          INTEGER NOT NULL,
    token        TEXT NOT NULL,
    host         TEXT NOT NULL,
    started_at   REAL NOT NULL
);
