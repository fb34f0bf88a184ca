-- Signed checkpoints of the evidence tree, as issued (C2SP signed notes). They are copies: the
-- ones that count are those that left the collector (reports, packs, auditors, Prometheus).
CREATE TABLE checkpoints (
    size INTEGER PRIMARY KEY,
    at_ms INTEGER NOT NULL,
    note TEXT NOT NULL,
    -- The tree's right edge at this size (hex hashes, comma-separated), so that opening the
    -- log reads only the records after the latest checkpoint.
    peaks TEXT NOT NULL DEFAULT ''
);
