-- Cannot run in a transaction block: migrate runs it in a background worker, outside one.
CREATE INDEX CONCURRENTLY users_email_normalized ON users (email_normalized);
