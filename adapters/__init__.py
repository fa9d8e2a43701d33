"""Clients of the systems around the service: the email provider, and the circuit
breaker and rate limiter the workers share through Redis. Built by each process's
composition root (tasks/runtime.py for the worker), never at import.
"""
