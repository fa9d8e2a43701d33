"""Work that owns its transactions: each function takes the pool, commits in batches.

Functions in services/ join their caller's transaction (they take `conn`); the ones
here open and commit their own, so a crash leaves every committed batch intact.
"""
