"""Migration guardian: assesses, verifies and gates every change before it deploys."""
