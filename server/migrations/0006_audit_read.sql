-- What the audit trail's reader (`GET /api/v1/audit`) filters by. Portable SQL: the same
-- migration runs on SQLite and PostgreSQL.

-- The station a change concerns: the corrected inspection's or the assigned one; NULL for a
-- model upload. Filled in for the changes made before this migration.
ALTER TABLE audit_log ADD COLUMN station TEXT;
UPDATE audit_log SET station = subject WHERE action = 'assign_station';
UPDATE audit_log SET station = (
    SELECT c.station FROM corrections c WHERE c.change_seq = audit_log.change_seq
) WHERE action = 'correct_inspection';

-- Newest first within each filter, paged by change number.
CREATE INDEX audit_log_by_action ON audit_log (action, change_seq);
CREATE INDEX audit_log_by_station ON audit_log (station, change_seq);
CREATE INDEX audit_log_by_supervisor ON audit_log (supervisor, change_seq);
