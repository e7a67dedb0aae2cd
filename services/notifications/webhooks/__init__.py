"""Webhooks for agency systems: subscriptions, signed deliveries, retries and their log."""
