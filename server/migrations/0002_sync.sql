-- Station tokens, device binding and the per-device sync cursor.
-- Portable SQL: the same migration runs on SQLite and PostgreSQL.

-- A kiosk's bearer token, stored only as the SHA-256 of the token (lower-case hex). The first
-- push binds it to one device; a device is bound to at most one token (NULLs do not collide).
CREATE TABLE station_tokens (
    token_sha256 TEXT PRIMARY KEY,
    station TEXT NOT NULL,
    device_id TEXT UNIQUE,
    created_at TEXT NOT NULL
);

-- The highest sequence the server has applied per device, for supervisors and for debugging a
-- kiosk that says it synced.
CREATE TABLE device_cursors (
    device_id TEXT PRIMARY KEY,
    highest_sequence BIGINT NOT NULL,
    updated_at TEXT NOT NULL
);
