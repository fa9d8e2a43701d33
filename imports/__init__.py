"""Bulk sync from a system of record: users imported from CSV or NDJSON, streamed.

`rows` reads a body into rows of text fields (pure, streaming); `sync` stages them with
COPY into a temporary table, checks them there and applies them set-based, joining its
caller's transaction (one transaction per import: a failed import changes nothing).
"""
