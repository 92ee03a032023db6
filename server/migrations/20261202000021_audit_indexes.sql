-- What keeps the Audit page, its CSV export and its journal check fast at a million records
-- (issue 13, item 5; BENCHMARKS.md). The page's filters are equalities on one column plus a time
-- range, newest first: each index below serves one filter in its order (an index entry ends with
-- the rowid, so `ORDER BY at DESC, id DESC` needs no sort), and `audit_at` (from the first
-- migration) serves no filter and the retention sweep.
CREATE INDEX audit_actor_at ON audit (actor, at);
CREATE INDEX audit_action_at ON audit (action, at);
CREATE INDEX audit_outcome_at ON audit (outcome, at);
-- The journal check's newest (sequence, hash) pairs and the highest sequence the log names: the
-- same expression as the queries, over the few records that name a journal record.
CREATE INDEX audit_journal_seq ON audit (CAST(journal_id AS INTEGER)) WHERE journal_id IS NOT NULL;
