-- Leadership among replicas: the current term and who holds it. A new leader increments the
-- term; an append fenced on an older term is refused. One row, always.
CREATE TABLE leadership (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    term     INTEGER NOT NULL,
    holder   TEXT NOT NULL,
    since_ms INTEGER NOT NULL
);
INSERT INTO leadership (id, term, holder, since_ms) VALUES (1, 0, '', 0);
