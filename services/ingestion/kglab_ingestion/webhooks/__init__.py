"""Signed webhooks (adr/0028): a user's endpoints receive their job and document events."""
