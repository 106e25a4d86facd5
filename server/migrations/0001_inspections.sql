-- Inspections as the kiosks record them (see protocol::InspectionRecord).
-- Portable SQL: the same migration runs on SQLite and PostgreSQL.
CREATE TABLE inspections (
    id TEXT PRIMARY KEY,
    device_id TEXT NOT NULL,
    sequence BIGINT NOT NULL,
    inspected_at TEXT NOT NULL,
    local_time TEXT NOT NULL,
    station TEXT NOT NULL,
    line TEXT NOT NULL,
    operator TEXT NOT NULL,
    part_serial TEXT NOT NULL,
    lot TEXT NOT NULL,
    model_id TEXT NOT NULL,
    model_version TEXT NOT NULL,
    verdict TEXT NOT NULL,
    -- The full record as the kiosk sent it (detections, thresholds, decision), JSON.
    record_json TEXT NOT NULL,
    snapshot_sha256 TEXT,
    received_at TEXT NOT NULL,
    UNIQUE (device_id, sequence)
);

CREATE INDEX inspections_by_time ON inspections (inspected_at);
CREATE INDEX inspections_by_station_time ON inspections (station, inspected_at);
