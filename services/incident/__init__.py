"""Incident service: emergency procedures, incident log, post-incident analysis."""
