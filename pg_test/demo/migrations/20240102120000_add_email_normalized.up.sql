-- A new column, filled by a background backfill in batches (no long UPDATE, no table lock).
ALTER TABLE users ADD COLUMN email_normalized text;
SELECT migrate.backfill('users', 'email_normalized = lower(email)', 'email_normalized IS NULL');
