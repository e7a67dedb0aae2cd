"""Service plans: versioned goals, actions and a safety plan agreed with the client."""
