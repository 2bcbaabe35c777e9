"""Runbook v1: YAML in, a validated ``Runbook`` out (see ``loader.load_runbook``)."""
