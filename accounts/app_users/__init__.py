"""The users console's domain: reading, changing and batch-changing one tenant's app users.

``selectors`` reads, ``services`` changes one user, ``batches`` changes many at once,
``forms`` parses input, ``csv_io`` exports and imports. Everything takes ``tenant=`` and reaches
the tenant's own database through its alias only.
"""
