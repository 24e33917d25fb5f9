"""The `guardians` command for people and CI."""
