"""What runbook steps can do; the registry lists every action and its parameters."""
