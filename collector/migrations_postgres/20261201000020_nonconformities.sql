-- Nonconformities (Clause 10.2): the current form of each, as JSON. The evidence log holds
-- every step; this table is what the collector restores at start.
CREATE TABLE nonconformities (
    id         BIGINT PRIMARY KEY,
    objective  TEXT NOT NULL,
    status     TEXT NOT NULL,
    body       TEXT NOT NULL,
    updated_ms BIGINT NOT NULL
);
CREATE INDEX nonconformities_objective ON nonconformities (objective, status);
