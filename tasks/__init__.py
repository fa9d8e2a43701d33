"""Background processes: the Dramatiq worker that sends greetings and the scheduler loop."""
