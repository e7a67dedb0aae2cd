"""The resource directory: Open Referral HSDS 3.x records, need categories, eligibility rules,
capacity and matching."""
