"""Users: the people greeted, their fields' rules, and idempotent creation.

Who opens the transaction:
- users/directory.py and users/rules.py join their caller's transaction (they take
  `conn`, or touch no database): a user written and their greetings planned commit
  together, by the API's transaction.
- users/idempotent_requests.py owns its transactions (it takes the pool): the key of
  an idempotent POST is claimed and completed in transactions of its own, around the
  request's.
"""
