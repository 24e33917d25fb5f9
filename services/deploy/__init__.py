"""Deploy guardian: staged rollouts with canary analysis and automatic rollback."""
