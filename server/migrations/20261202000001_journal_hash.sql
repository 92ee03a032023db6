-- The hash of the helper's journal record a change's audit record names, beside its sequence
-- number (journal_id): the pair, not a count, is what the Audit page's journal check compares,
-- so a journal cut short and grown back to the same length no longer passes.
ALTER TABLE audit ADD COLUMN journal_hash TEXT;
