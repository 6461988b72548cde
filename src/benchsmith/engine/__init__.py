"""Execution: wire formats, HTTP, rate limits, retries, budget, and the online executor."""
