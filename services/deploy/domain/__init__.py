"""The deploy guardian's pure part: analysis conditions, statistics, measuring and judging.

No I/O here: no HTTP, no Kafka, no database, no clock (callers pass samples and times in),
so every rule of a canary analysis can be unit-tested exhaustively."""
