"""Adapters: PostgreSQL, the object store, AWS clients, artifact signing, migrations."""
