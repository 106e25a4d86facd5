-- What supervisors change and stations pull: settings, model assignments, corrections, and the
-- audit trail of who changed what. Portable SQL: the same migration runs on SQLite and PostgreSQL.

-- The change sequence: every change takes the next value in its own transaction. The row lock
-- this update takes (PostgreSQL) or the write lock (SQLite) makes changes commit in sequence
-- order, so a pull that has seen a number has seen every smaller one.
CREATE TABLE change_counter (
    id INTEGER PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO change_counter (id, value) VALUES (1, 0);

-- Uploaded ONNX models, checked by running them before they are stored. `id` is name@version.
CREATE TABLE models (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    byte_len BIGINT NOT NULL,
    -- The class names the model declares, a JSON array of strings.
    classes_json TEXT NOT NULL,
    uploaded_by TEXT NOT NULL,
    uploaded_at TEXT NOT NULL,
    UNIQUE (name, version)
);

-- A station's current settings; `change_seq` is the change that last set them.
CREATE TABLE station_settings (
    station TEXT PRIMARY KEY,
    model_id TEXT REFERENCES models (id),
    default_threshold DOUBLE PRECISION NOT NULL,
    -- protocol::ClassThreshold list, JSON.
    thresholds_json TEXT NOT NULL,
    change_seq BIGINT NOT NULL,
    changed_by TEXT NOT NULL,
    changed_at TEXT NOT NULL
);

-- Supervisor corrections of stored inspections; `station` is the inspection's, for the pull.
CREATE TABLE corrections (
    id TEXT PRIMARY KEY,
    inspection_id TEXT NOT NULL REFERENCES inspections (id),
    station TEXT NOT NULL,
    -- protocol::CorrectionAction, JSON.
    action_json TEXT NOT NULL,
    supervisor TEXT NOT NULL,
    corrected_at TEXT NOT NULL,
    change_seq BIGINT NOT NULL UNIQUE
);
CREATE INDEX corrections_by_station_change ON corrections (station, change_seq);
CREATE INDEX corrections_by_inspection ON corrections (inspection_id);

-- Who changed what, when: one row per change, keyed by its change number.
CREATE TABLE audit_log (
    change_seq BIGINT PRIMARY KEY,
    supervisor TEXT NOT NULL,
    at TEXT NOT NULL,
    -- What was done, e.g. assign_station, correct_inspection, upload_model.
    action TEXT NOT NULL,
    -- What it was done to: a station name, an inspection id, a model id.
    subject TEXT NOT NULL,
    -- The change itself, JSON.
    details_json TEXT NOT NULL
);
CREATE INDEX audit_log_by_subject ON audit_log (subject, change_seq);
