"""The dashboard: a read model of the guardians' events, served as one live page."""
