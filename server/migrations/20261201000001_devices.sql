-- Browsers that have signed in to an account (OWASP's device cookies): while an attacker keeps the
-- account locked for everyone else, a browser its owner used before keeps its way in, throttled on
-- its own. Only the SHA-256 of a cookie's value is stored, so a copy of the database signs nobody in.
CREATE TABLE devices (
    token_hash   TEXT    PRIMARY KEY,          -- SHA-256 of the cookie's value, hex
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   INTEGER NOT NULL
);
CREATE INDEX devices_user ON devices (user_id);
