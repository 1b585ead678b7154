DROP INDEX CONCURRENTLY users_email_normalized;
