"""Notifications: Inbox, reminders, escalations and webhooks."""
