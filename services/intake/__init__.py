"""Intake: where a person enters the system: registration, consent, assessment."""
