"""Looks at the systems around the service that are not a channel: RabbitMQ's queues
(broker_probe.py). Built by each process's composition root, never at import.
"""
