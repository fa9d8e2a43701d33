"""Schema tooling: the migration runner, its statement splitter, whole-database create and drop."""
