-- The PostgreSQL schema: the same tables as the SQLite one (migrations/0001_initial.sql), with
-- 64-bit integers, and an explicit `rowid` where SQLite has an implicit one (the store pages
-- and orders by it).

-- Reference profiles, versioned by content hash, kept per model version.
CREATE TABLE profiles (
    rowid         BIGSERIAL NOT NULL,
    hash          TEXT PRIMARY KEY,
    model         TEXT NOT NULL,
    model_version TEXT NOT NULL,
    body          TEXT NOT NULL,
    created_ms    BIGINT NOT NULL
);
CREATE INDEX profiles_model ON profiles (model, created_ms);

-- Every summary id ever accepted (until retention): idempotency survives roll-up, and holds
-- across replicas, which all insert here.
CREATE TABLE summary_ids (
    id          TEXT PRIMARY KEY,
    received_ms BIGINT NOT NULL
);
CREATE INDEX summary_ids_received ON summary_ids (received_ms);

-- Minute summaries as received (resolution 'raw') and hourly roll-ups ('hour').
CREATE TABLE summaries (
    rowid           BIGSERIAL NOT NULL UNIQUE,
    id              TEXT PRIMARY KEY,
    agent           TEXT NOT NULL,
    model           TEXT NOT NULL,
    model_version   TEXT NOT NULL,
    profile_hash    TEXT NOT NULL,
    window_start_ms BIGINT NOT NULL,
    window_ms       BIGINT NOT NULL,
    seq             BIGINT NOT NULL,
    resolution      TEXT NOT NULL,
    received_ms     BIGINT NOT NULL,
    body            TEXT NOT NULL
);
CREATE INDEX summaries_window ON summaries (window_start_ms);
CREATE INDEX summaries_model ON summaries (model, received_ms);

-- Append-only, hash-chained evidence log. The sequence is the primary key: two writers that
-- read the same head cannot both append after it.
CREATE TABLE evidence (
    seq       BIGINT PRIMARY KEY,
    at_ms     BIGINT NOT NULL,
    kind      TEXT NOT NULL,
    objective TEXT,
    canonical TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
CREATE INDEX evidence_objective ON evidence (objective, kind, at_ms);

CREATE FUNCTION evidence_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the evidence log is append-only';
END;
$$;
CREATE TRIGGER evidence_no_update BEFORE UPDATE ON evidence
    FOR EACH ROW EXECUTE FUNCTION evidence_append_only();
CREATE TRIGGER evidence_no_delete BEFORE DELETE ON evidence
    FOR EACH ROW EXECUTE FUNCTION evidence_append_only();

-- Lifecycle and last evaluation per objective, so states survive restarts and failovers.
CREATE TABLE objective_state (
    objective    TEXT PRIMARY KEY,
    version      TEXT NOT NULL,
    lifecycle    TEXT NOT NULL,
    last_value   TEXT,
    last_verdict TEXT,
    samples      BIGINT,
    evaluated_ms BIGINT
);
