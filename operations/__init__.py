"""Operations: what operators and their tools look at and the upkeep that keeps the
service healthy: readiness checks, metrics, the status page, time zones, partitions.

Who opens the transaction: every function here owns its own (it takes the pool, or
opens a short read), except where it takes `conn` and says so; checks are bounded in
time and never hold a transaction across a call to another system.
"""
