-- The arguments of a change as structured data (JSON), beside the human-readable columns: what a
-- revert needs to know (a sysctl's key and the value it replaced), read back by the server only.
ALTER TABLE audit ADD COLUMN arguments TEXT;
