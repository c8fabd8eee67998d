"""Pure domain code: no imports of sqlalchemy, redis, celery or anthropic."""
