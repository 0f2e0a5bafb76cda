-- The HTTP service's lifecycle publishing, version 3: where each run's lifecycle goes, and
-- every delivery of it with its attempts.
--
-- Applied by `conveyor.publishing` when the service starts, after the engine's own migrations
-- (001, 002), and written to be applied again harmlessly (IF NOT EXISTS): the engine's
-- `user_version` numbers only the engine's scripts, so these tables keep out of its sequence.

-- Where a run's lifecycle is sent: a callback topic or a webhook, in the order the run's
-- start request listed them. A webhook's secret is kept because signing needs it; no answer
-- of the API ever contains it.
CREATE TABLE IF NOT EXISTS publish_targets (
    id         TEXT PRIMARY KEY,
    run_id     TEXT NOT NULL,
    position   INTEGER NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('topic', 'webhook')),
    address    TEXT NOT NULL,
    secret     TEXT,
    events     TEXT,
    created_at REAL NOT NULL,
    UNIQUE (run_id, kind, position)
) WITHOUT ROWID;

-- How far each published run's timeline has been turned into deliveries.
CREATE TABLE IF NOT EXISTS publish_cursors (
    run_id    TEXT PRIMARY KEY,
    after_seq INTEGER NOT NULL DEFAULT 0,
    finished  INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- One message to one target. `seq` orders a target's deliveries: each target gets them one
-- at a time, oldest first, so a receiver sees a run's lifecycle in order.
CREATE TABLE IF NOT EXISTS publish_deliveries (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    target_id       TEXT NOT NULL REFERENCES publish_targets (id) ON DELETE CASCADE,
    run_id          TEXT NOT NULL,
    event_seq       INTEGER NOT NULL,
    type            TEXT NOT NULL,
    message         TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    next_attempt_at REAL,
    created_at      REAL NOT NULL,
    delivered_at    REAL,
    UNIQUE (target_id, event_seq)
);

CREATE INDEX IF NOT EXISTS publish_deliveries_pending ON publish_deliveries (target_id, seq)
    WHERE status = 'pending';

CREATE INDEX IF NOT EXISTS publish_deliveries_by_run ON publish_deliveries (run_id, seq);
