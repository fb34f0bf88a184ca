-- A summary can be kept as the gzip body it arrived in (the whole envelope, about 4 kB for a
-- 20-feature summary) instead of its decompressed JSON text (about 13 kB, which LZ4 took to
-- 6.4 kB): less to send, copy, compress and write to WAL per summary, and nothing to scan at
-- ingest. Such a row has its body here and an empty `body`; rows with `body` text (those stored
-- before, roll-ups, summaries sent uncompressed) keep it, and both read back as the same
-- summary. Already compressed, it is never compressed again (EXTERNAL); with the table's
-- toast_tuple_target it stays in its row unless it would not fit in a page.
ALTER TABLE summaries ADD COLUMN envelope_gzip bytea;
ALTER TABLE summaries ALTER COLUMN envelope_gzip SET STORAGE EXTERNAL;
