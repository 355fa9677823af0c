"""Serving benchmarks: a streaming OpenAI-compatible client, its metrics, and the servers it measures."""
