-- Refusals an attacker can repeat cheaply (throttled sign-ins, forbidden requests) are folded into
-- one record per key and period (issue 13, item 5): `count` events between `at` (the first) and
-- `last_at` (the last) in the minute starting at `period`. `aggregate_key` is a hash of what makes
-- two events the same (action, outcome, detail, target, actor, role, client network); it is NULL
-- for every record that is not aggregated (changes, sign-ins, each password guess), which then
-- keeps count 1 and never meets another.
ALTER TABLE audit ADD COLUMN count INTEGER NOT NULL DEFAULT 1;
ALTER TABLE audit ADD COLUMN last_at INTEGER;
ALTER TABLE audit ADD COLUMN period INTEGER;
ALTER TABLE audit ADD COLUMN aggregate_key TEXT;
-- The upsert's conflict target: parallel events of one key and period meet here, so each adds
-- exactly one to the count. Period first: the same index counts a period's aggregates.
CREATE UNIQUE INDEX audit_aggregate ON audit (period, aggregate_key) WHERE aggregate_key IS NOT NULL;
