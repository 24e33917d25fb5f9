"""The event contract: one pydantic model per event, the topic registry and the envelope."""
