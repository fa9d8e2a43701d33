"""Recipients' rules beside the operator's: the one-click unsubscribe link
(`links`), pure; the delivery window is read in SQL (repositories/message_lifecycle)
and opting out lives with the users (users/directory.py)."""
