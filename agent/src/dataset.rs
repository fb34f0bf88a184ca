//! Reading CSV and NDJSON datasets into validated events.
