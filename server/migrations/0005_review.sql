-- What the supervisors' review queries filter, sort and count by.
-- Portable SQL: the same migration runs on SQLite and PostgreSQL.

-- One row per detection of a stored inspection, written in the push's transaction: the defect
-- class filter, the Pareto of classes and the location heat map read it. The box centre is in
-- whole pixels of the camera frame, so bins are integer arithmetic on both databases.
-- (Inspections stored before this migration have no rows here.)
CREATE TABLE inspection_detections (
    inspection_id TEXT NOT NULL REFERENCES inspections (id),
    position INTEGER NOT NULL,
    class_id BIGINT NOT NULL,
    label TEXT NOT NULL,
    score DOUBLE PRECISION NOT NULL,
    centre_x BIGINT NOT NULL,
    centre_y BIGINT NOT NULL,
    PRIMARY KEY (inspection_id, position)
);
CREATE INDEX inspection_detections_by_label ON inspection_detections (label, inspection_id);

-- The pixel size of a record's snapshot, read from its JPEG header when the record is pushed:
-- the frame that detection boxes are normalised to for the heat map. NULL without a snapshot.
ALTER TABLE inspections ADD COLUMN snapshot_width BIGINT;
ALTER TABLE inspections ADD COLUMN snapshot_height BIGINT;

-- History is listed newest first with a keyset (inspected_at, id); each filter a supervisor
-- narrows by most has an index that serves that order.
DROP INDEX inspections_by_time;
DROP INDEX inspections_by_station_time;
CREATE INDEX inspections_by_time ON inspections (inspected_at, id);
CREATE INDEX inspections_by_station_time ON inspections (station, inspected_at, id);
CREATE INDEX inspections_by_line_time ON inspections (line, inspected_at, id);
CREATE INDEX inspections_by_operator_time ON inspections (operator, inspected_at, id);
CREATE INDEX inspections_by_verdict_time ON inspections (verdict, inspected_at, id);
CREATE INDEX inspections_by_lot_time ON inspections (lot, inspected_at, id);
CREATE INDEX inspections_by_serial ON inspections (part_serial);
