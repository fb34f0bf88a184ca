-- Summary bodies (about 13 kB of JSON each) are stored out of line, TOASTed, and PostgreSQL's
-- default compression for that, pglz, was the largest single cost of ingest on the machine: as
-- much CPU as the collector's own work per summary. LZ4 compresses them about as well for a
-- fraction of the CPU. A server built without LZ4 keeps them uncompressed instead (EXTERNAL:
-- out of line, no compression), trading disk for the same CPU saving. Rows already stored keep
-- the form they were written in; both read back the same.
DO $$
BEGIN
    ALTER TABLE summaries ALTER COLUMN body SET COMPRESSION lz4;
EXCEPTION WHEN OTHERS THEN
    ALTER TABLE summaries ALTER COLUMN body SET STORAGE EXTERNAL;
END
$$;
