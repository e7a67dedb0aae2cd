"""Planning: Cases, service plans, goals and notes."""
