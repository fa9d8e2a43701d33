"""Rules every process applies, as plain code with no I/O: statuses and delivery policy."""
