"""The migration guardian's pure part: analysis rules, risk policy, review workflow rules.
No I/O here: no database, no Kafka, no files (callers pass text in)."""
