"""Rules every process applies, as plain code with no I/O: the occasion registry and its
calendar (occasions.py), the statuses and their transitions (statuses.py), the delivery
policy (delivery_policy.py)."""
