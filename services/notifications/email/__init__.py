"""E-mail: a notification channel, messages in the recipient's language, the daily digest."""
