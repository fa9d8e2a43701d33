"""Seeding: deterministic users and message history, and their bulk loader."""
