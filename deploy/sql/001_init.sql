-- 001_init: the tables of the service (README: MySQL). Applied by `couponctl migrate`, which
-- records each applied file in schema_migrations. Idempotent.
--
-- Identifiers use ascii_bin: ids are case-sensitive in Redis ("U1" and "u1"
-- are two users), so they must be in MySQL too; a case-insensitive
-- collation would merge them and break "one row per issued coupon".

CREATE TABLE IF NOT EXISTS schema_migrations (
  version     INT UNSIGNED NOT NULL PRIMARY KEY,
  name        VARCHAR(128) NOT NULL,
  applied_at  DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS campaigns (
  id          VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
  name        VARCHAR(200) NOT NULL,
  total       INT UNSIGNED NOT NULL,
  starts_at   DATETIME(3)  NOT NULL,          -- UTC
  ends_at     DATETIME(3)  NULL,              -- UTC; NULL = never
  persisted   INT UNSIGNED NOT NULL DEFAULT 0, -- rows in coupons; never above total
  created_at  DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  CONSTRAINT ck_campaigns_cap CHECK (persisted <= total),
  CONSTRAINT ck_campaigns_total CHECK (total >= 1)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS coupons (
  id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  campaign_id  VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  user_id      VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  seq          INT UNSIGNED NOT NULL,
  issued_at    DATETIME(3) NOT NULL,           -- when Redis accepted it (UTC)
  persisted_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  UNIQUE KEY uq_coupons_campaign_user (campaign_id, user_id),
  KEY ix_coupons_campaign_seq (campaign_id, seq),
  CONSTRAINT fk_coupons_campaign FOREIGN KEY (campaign_id) REFERENCES campaigns (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS failed_events (
  id              BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  topic           VARCHAR(249) NOT NULL,
  kafka_partition INT NOT NULL,
  kafka_offset    BIGINT NOT NULL,
  message_key     VARBINARY(1024) NULL,
  payload         MEDIUMBLOB NOT NULL,
  campaign_id     VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
  user_id         VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
  error           TEXT NOT NULL,
  attempts        INT UNSIGNED NOT NULL DEFAULT 1,
  status          ENUM('open', 'resolved', 'dead') NOT NULL DEFAULT 'open',
  next_retry_at   DATETIME(3) NULL,
  created_at      DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at      DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  UNIQUE KEY uq_failed_events_source (topic, kafka_partition, kafka_offset),
  KEY ix_failed_events_due (status, next_retry_at),
  KEY ix_failed_events_campaign (campaign_id, status)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
