"""Backup guardian: backups that are proven restorable."""
