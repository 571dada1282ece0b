"""Writes on accounts, one module per sub-domain (``staff`` for the console's own users)."""
