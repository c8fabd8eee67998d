"""Service functions: each one step of the pipeline, reading its work from SQL."""
