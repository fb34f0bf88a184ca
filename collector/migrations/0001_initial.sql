-- Reference profiles, versioned by content hash, kept per model version.
CREATE TABLE profiles (
    hash          TEXT PRIMARY KEY,
    model         TEXT NOT NULL,
    model_version TEXT NOT NULL,
    body          TEXT NOT NULL,
    created_ms    INTEGER NOT NULL
);
CREATE INDEX profiles_model ON profiles (model, created_ms);

-- Every summary id ever accepted (until retention): idempotency survives roll-up.
CREATE TABLE summary_ids (
    id          TEXT PRIMARY KEY,
    received_ms INTEGER NOT NULL
) WITHOUT ROWID;

-- Minute summaries as received (resolution 'raw') and hourly roll-ups ('hour').
CREATE TABLE summaries (
    id              TEXT PRIMARY KEY,
    agent           TEXT NOT NULL,
    model           TEXT NOT NULL,
    model_version   TEXT NOT NULL,
    profile_hash    TEXT NOT NULL,
    window_start_ms INTEGER NOT NULL,
    window_ms       INTEGER NOT NULL,
    seq             INTEGER NOT NULL,
    resolution      TEXT NOT NULL,
    received_ms     INTEGER NOT NULL,
    body            TEXT NOT NULL
);
CREATE INDEX summaries_window ON summaries (window_start_ms);
CREATE INDEX summaries_model ON summaries (model, received_ms);

-- Append-only, hash-chained evidence log.
CREATE TABLE evidence (
    seq       INTEGER PRIMARY KEY,
    at_ms     INTEGER NOT NULL,
    kind      TEXT NOT NULL,
    objective TEXT,
    canonical TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
CREATE INDEX evidence_objective ON evidence (objective, kind, at_ms);

CREATE TRIGGER evidence_no_update BEFORE UPDATE ON evidence
BEGIN SELECT RAISE(ABORT, 'the evidence log is append-only'); END;
CREATE TRIGGER evidence_no_delete BEFORE DELETE ON evidence
BEGIN SELECT RAISE(ABORT, 'the evidence log is append-only'); END;

-- Lifecycle and last evaluation per objective, so states survive restarts.
CREATE TABLE objective_state (
    objective   TEXT PRIMARY KEY,
    version     TEXT NOT NULL,
    lifecycle   TEXT NOT NULL,
    last_value  TEXT,
    last_verdict TEXT,
    samples     INTEGER,
    evaluated_ms INTEGER
);
