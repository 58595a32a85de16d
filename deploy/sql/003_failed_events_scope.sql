-- 003_failed_events_scope: failed events belong to any product, not only
-- to coupons. The two labels a row carries for operators were a campaign
-- and a user; they become a scope (a campaign, a ticket type) and a subject
-- (a user, a ticket), chosen by the product that recorded the row. Each
-- product retries its own topic's rows in id order with FOR UPDATE SKIP
-- LOCKED; the index on (topic, status, id) lets that read walk in order
-- and lock only the rows it takes, so that several workers share them
-- (without it the server sorts, and locks every open row of the topic).
--
-- Stop every coupon-worker before applying it (they write these columns),
-- then `couponctl migrate`, then start the new workers. One ALTER, so it
-- is applied whole or not at all; the IF EXISTS forms make a repeat of it
-- harmless.

ALTER TABLE failed_events
  CHANGE COLUMN IF EXISTS campaign_id scope_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
  CHANGE COLUMN IF EXISTS user_id subject_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
  DROP INDEX IF EXISTS ix_failed_events_campaign,
  ADD INDEX IF NOT EXISTS ix_failed_events_scope (scope_id, status),
  ADD INDEX IF NOT EXISTS ix_failed_events_retry (topic, status, id);
