"""A local stand-in for the external email API, for development and tests."""
