-- The second factor (issue 13, item 15): one TOTP secret per user, and their recovery codes.
-- The secret must be readable to check a code, so it is stored as it is; the database is the
-- server's alone (mode 0600, its own user). `confirmed_at` stays NULL until the user has entered
-- a first code from it: an enrolment that was never confirmed protects nothing and asks nothing.
CREATE TABLE second_factors (
    user_id      INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    secret       TEXT    NOT NULL,             -- base32, 160 random bits
    created_at   INTEGER NOT NULL,
    confirmed_at INTEGER,
    -- The newest time step a code was accepted for: that code, and every older one, is refused
    -- (RFC 6238 section 5.2: a code is accepted once).
    last_step    INTEGER NOT NULL DEFAULT -1
);

-- Recovery codes: 120 random bits each, so a SHA-256 of the code is enough (ASVS 6.5.2); each is
-- spent by the sign-in that uses it.
CREATE TABLE recovery_codes (
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash  TEXT    NOT NULL,               -- SHA-256 of the normalised code, hex
    created_at INTEGER NOT NULL,
    used_at    INTEGER,
    PRIMARY KEY (user_id, code_hash)
);

-- A login that may do nothing but enrol a second factor (an admin, when the server requires one
-- of admins, who has none yet): 1 until the enrolment is confirmed.
ALTER TABLE logins ADD COLUMN enrolment_due INTEGER NOT NULL DEFAULT 0 CHECK (enrolment_due IN (0, 1));
