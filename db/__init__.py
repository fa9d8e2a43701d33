"""The bottom layer of PostgreSQL access: the connection pool and query helpers."""
