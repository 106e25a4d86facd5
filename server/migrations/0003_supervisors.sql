-- Supervisor accounts and their login sessions.
-- Portable SQL: the same migration runs on SQLite and PostgreSQL.

-- The password only as an argon2id PHC string (salt and parameters included).
CREATE TABLE supervisors (
    name TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    created_at TEXT NOT NULL
);

-- A browser session: the cookie's random token, stored only as its SHA-256 (lower-case hex).
CREATE TABLE supervisor_sessions (
    token_sha256 TEXT PRIMARY KEY,
    supervisor TEXT NOT NULL REFERENCES supervisors (name) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);

CREATE INDEX supervisor_sessions_by_expiry ON supervisor_sessions (expires_at);
