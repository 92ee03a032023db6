-- Accounts, logins (one row per signed-in browser) and the audit trail.
-- Times are Unix seconds (UTC).

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,            -- argon2id, PHC string
    role          TEXT    NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    disabled      INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

-- A login is what a session cookie stands for. Ending it (logout, idle or absolute expiry, an
-- admin, disabling the user, changing their role or password) ends that browser's access at its
-- next request, whatever the cookie store still holds.
CREATE TABLE logins (
    id          TEXT    PRIMARY KEY,           -- random, 128 bits, hex
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL,
    client_addr TEXT    NOT NULL,
    user_agent  TEXT    NOT NULL,
    ended_at    INTEGER,
    end_reason  TEXT
);
CREATE INDEX logins_active ON logins (user_id) WHERE ended_at IS NULL;

CREATE TABLE audit (
    id          INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    actor       TEXT,                          -- username, or NULL when nobody is signed in
    role        TEXT,
    client_addr TEXT    NOT NULL,
    user_agent  TEXT    NOT NULL,
    action      TEXT    NOT NULL,              -- e.g. login, logout, user.add
    target      TEXT,                          -- what it acted on, e.g. a username
    outcome     TEXT    NOT NULL,              -- success | refused | failed
    detail      TEXT,                          -- a human-readable line; never a secret
    preview     TEXT,                          -- what a confirmed change showed (operator workflows)
    journal_id  TEXT                           -- the helper's journal record (operator workflows)
);
CREATE INDEX audit_at ON audit (at);
