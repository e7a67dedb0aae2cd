"""Contracts and infrastructure shared by every Casework service. No domain rules live here."""
