"""Outgoing messages of the auth service: mail through an SMTP port."""
