"""When greetings are due: calendar rules for occasions in each user's time zone."""
