"""Adapters to the outside: SQL, the Redis intake stream, the Batch API."""
