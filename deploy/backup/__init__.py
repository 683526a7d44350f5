"""Backups of every store the system uses, restores, retention and the restore drill's tools.

``make backup`` / ``make restore BACKUP=...`` / ``python -m deploy.backup --help``; the design,
its alternatives and its measurements are in adr/0021, the procedure in docs/runbook.md.
"""
