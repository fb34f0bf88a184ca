-- A report snapshot is tied to the signed log: `record` is the `report_snapshot` evidence
-- record that holds the SHA-256 of `state`. A snapshot without one (kept before this column)
-- is not used.
ALTER TABLE report_snapshots ADD COLUMN record INTEGER;
