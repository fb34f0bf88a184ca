-- A summary can be kept as the gzip body it arrived in (the whole envelope, about 4 kB for a
-- 20-feature summary) instead of its decompressed JSON text (about 13 kB): a third of the
-- bytes to write and store, and nothing to scan or copy at ingest. Such a row has its body
-- here and an empty `body`; rows with `body` text (those stored before, roll-ups, summaries
-- sent uncompressed) keep it, and both read back as the same summary.
ALTER TABLE summaries ADD COLUMN envelope_gzip BLOB;
