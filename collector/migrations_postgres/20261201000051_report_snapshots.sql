-- Reports that scale: the state a report needs at a period's start, folded from the evidence
-- log up to record `seq` (see the SQLite migration of the same name). Derived data.
CREATE TABLE report_snapshots (
    seq   BIGINT PRIMARY KEY,
    state TEXT NOT NULL
);
-- The period's first and last records are found by time.
CREATE INDEX evidence_at ON evidence (at_ms);
