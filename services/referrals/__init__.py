"""Referrals: Resource directory and closed-loop referrals."""
