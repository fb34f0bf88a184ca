-- Reports that scale: the state a report needs at a period's start (objectives in force,
-- each one's lifecycle, open alerts, breaches and gaps), folded from the evidence log up to
-- record `seq`, so a report reads only its period's records plus the records since the
-- nearest snapshot. Derived data: deleting a row only makes reports slower.
CREATE TABLE report_snapshots (
    seq INTEGER PRIMARY KEY,
    state TEXT NOT NULL
);
-- The period's first and last records are found by time.
CREATE INDEX evidence_at ON evidence (at_ms);
