-- A report snapshot is tied to the signed log: `record` is the `report_snapshot` evidence
-- record that holds the SHA-256 of `state` (see the SQLite migration of the same name).
ALTER TABLE report_snapshots ADD COLUMN record BIGINT;
