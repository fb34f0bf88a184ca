-- A summary body (about 13 kB of JSON) compresses with LZ4 to well under a page, yet with the
-- default toast_tuple_target (about 2 kB) PostgreSQL moved every compressed body out of line
-- into the TOAST table: per summary two or three more heap tuples, as many entries in the
-- TOAST table's index, and their WAL. With the target at its maximum (8160 bytes, one row per
-- page) a body that compresses to fit stays in its row, still compressed; one that does not is
-- moved out of line as before. Rows already stored keep the form they were written in; every
-- form reads back the same text.
ALTER TABLE summaries SET (toast_tuple_target = 8160);
