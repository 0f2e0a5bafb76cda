-- The engine's schema, version 3: the HTTP service's idempotency keys say whose they are
-- unambiguously.
--
-- The service stored `owner:key`, and both may contain ':', so owner `alice` with key `inv:k1`
-- met owner `alice:inv` with key `k1`. A key is now stored as `{length of owner}:owner:key`
-- (`conveyor.api.starting.scoped_key`); each row knows its owner, so the old form is split
-- without doubt. Keys of runs without an owner (started without the service) are left as they
-- were.

UPDATE runs
SET idempotency_key = length(owner) || ':' || idempotency_key
WHERE idempotency_key IS NOT NULL
    AND owner IS NOT NULL
    AND substr(idempotency_key, 1, length(owner) + 1) = owner || ':';
