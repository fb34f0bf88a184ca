-- The notifier's delivery state: per objective, the alert last sent (firing or resolved), to
-- whom and when, as JSON. The leader writes it after each cycle that changed it; a replica
-- taking over, or a collector restarting, reads it back, so a resolution is still sent.
CREATE TABLE notifier_alerts (
    objective  TEXT PRIMARY KEY,
    body       TEXT NOT NULL,
    updated_ms INTEGER NOT NULL
);
