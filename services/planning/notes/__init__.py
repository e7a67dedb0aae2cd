"""Progress notes: drafts, signatures, addenda and supervisors' co-signatures."""
