-- Named queries of lifecycle publishing (tables: conveyor/api/sql/003_publishing.sql).

-- name: insert_target
INSERT OR IGNORE INTO publish_targets
    (id, run_id, position, kind, address, secret, events, created_at)
VALUES (:id, :run_id, :position, :kind, :address, :secret, :events, :created_at);

-- name: targets_of
SELECT id, run_id, position, kind, address, secret, events FROM publish_targets
WHERE run_id = ? ORDER BY kind, position;

-- name: plain_secrets
SELECT id, secret FROM publish_targets
WHERE secret IS NOT NULL AND secret NOT LIKE 'fernet:%';

-- name: update_secret
UPDATE publish_targets SET secret = ? WHERE id = ?;

-- name: insert_cursor
INSERT OR IGNORE INTO publish_cursors (run_id, after_seq, finished) VALUES (?, 0, 0);

-- name: cursor_of
SELECT after_seq, finished FROM publish_cursors WHERE run_id = ?;

-- name: update_cursor
UPDATE publish_cursors SET after_seq = :after_seq, finished = :finished WHERE run_id = :run_id;

-- name: unfinished_runs
SELECT run_id FROM publish_cursors WHERE finished = 0;

-- name: insert_delivery
INSERT OR IGNORE INTO publish_deliveries
    (id, target_id, run_id, event_seq, type, message, status, attempts, next_attempt_at,
     created_at)
VALUES (:id, :target_id, :run_id, :event_seq, :type, :message, 'pending', 0, :created_at,
        :created_at);

-- name: pending_heads
-- The oldest pending delivery of each target, soonest due first.
SELECT d.seq, d.id, d.target_id, d.run_id, d.event_seq, d.type, d.message, d.attempts,
       d.next_attempt_at, t.kind, t.address, t.secret
FROM publish_deliveries d JOIN publish_targets t ON t.id = d.target_id
WHERE d.seq IN (
    SELECT MIN(seq) FROM publish_deliveries WHERE status = 'pending' GROUP BY target_id
)
ORDER BY d.next_attempt_at, d.seq
LIMIT ?;

-- name: mark_delivered
UPDATE publish_deliveries SET status = 'delivered', attempts = :attempts, delivered_at = :now,
    next_attempt_at = NULL
WHERE id = :id;

-- name: mark_retry
UPDATE publish_deliveries SET attempts = :attempts, last_error = :error, next_attempt_at = :next
WHERE id = :id;

-- name: mark_failed
UPDATE publish_deliveries SET status = 'failed', attempts = :attempts, last_error = :error,
    next_attempt_at = NULL
WHERE id = :id;

-- name: deliveries_of
SELECT d.id, d.event_seq, d.type, d.status, d.attempts, d.last_error, d.next_attempt_at,
       d.created_at, d.delivered_at, t.kind, t.address, t.position
FROM publish_deliveries d JOIN publish_targets t ON t.id = d.target_id
WHERE d.run_id = :run_id AND (:status IS NULL OR d.status = :status)
ORDER BY d.seq
LIMIT :limit OFFSET :offset;

-- name: deliveries_count
SELECT COUNT(*) FROM publish_deliveries
WHERE run_id = :run_id AND (:status IS NULL OR status = :status);

-- name: unit_data
-- Read from the engine's own row of a step (idx -1) or item: a completed unit's outputs.
-- Building the run's view instead would cost time in the number of steps, for each completion.
SELECT data FROM units WHERE run_id = ? AND step_id = ? AND idx = ?;
