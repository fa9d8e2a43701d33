"""PostgreSQL access: the connection pool, query helpers, migrations and seed data."""
