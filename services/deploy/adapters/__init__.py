"""The deploy guardian's adapters: the parts that touch the world (Prometheus, deploy
targets), each behind a small interface the domain does not depend on."""
