"""Delivery: greetings due are dispatched, recovered, sent and recorded; operators read
and retry them.

Who opens the transaction:
- delivery/dispatch.py and delivery/attempts.py own their transactions (they take the
  pool) and commit each step before the next (claim, then publish; take, then call the
  channel, then record), so a crash leaves every committed step intact.
- delivery/messages.py joins its caller's transaction (it takes `conn`): the API's
  reads and the operator's retry.
What an answer means and what follows is domain/delivery_policy.py's; the status
changes themselves, repositories/message_lifecycle/'s.
"""
