//! Store tests: every aggregate on SQLite and on PostgreSQL.
