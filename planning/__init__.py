"""Planning: keeping every live user's next greeting of each occasion planned.

Who opens the transaction:
- planning/for_users.py joins its caller's transaction (its functions take `conn`):
  a user's creation or edit, a send recorded, an expiry; it never commits.
- planning/all_users.py owns its transactions (it takes the pool) and commits in
  batches: the scheduler's hourly pass over every user, at any scale.
The planning statement itself is repositories/occurrences.py's; the calendar, the
registry's domain/occasions.py.
"""
