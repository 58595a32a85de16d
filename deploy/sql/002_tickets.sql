-- 002_tickets: the paid-ticket product line (README: Paid tickets). Applied by
-- `couponctl migrate` after 001. Idempotent.
--
-- MySQL is the truth for a ticket type's stock: `issued` counts the tickets
-- that hold stock (PENDING and not yet reaped, PAID, CONFIRMED) and the
-- conditional UPDATE that raises it keeps it <= total. Every state change of
-- a ticket is an UPDATE guarded on its current status, so the reaper, a late
-- payment, a cancel and a retry cannot both win.

CREATE TABLE IF NOT EXISTS ticket_types (
  id            VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
  name          VARCHAR(200) NOT NULL,
  price         BIGINT UNSIGNED NOT NULL,       -- in the currency's minor unit
  currency      CHAR(3) CHARACTER SET ascii COLLATE ascii_bin NOT NULL, -- ISO 4217
  total         INT UNSIGNED NOT NULL,
  issued        INT UNSIGNED NOT NULL DEFAULT 0, -- held + sold; never above total
  hold_seconds  INT UNSIGNED NOT NULL,
  starts_at     DATETIME(3) NOT NULL,            -- UTC
  ends_at       DATETIME(3) NULL,                -- UTC; NULL = never
  created_at    DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  CONSTRAINT ck_ticket_types_cap CHECK (issued <= total),
  CONSTRAINT ck_ticket_types_total CHECK (total >= 1),
  CONSTRAINT ck_ticket_types_hold CHECK (hold_seconds BETWEEN 10 AND 86400)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS tickets (
  id                 CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY, -- UUID v4
  ticket_type_id     VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  user_id            VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  status             ENUM('PENDING', 'PAID', 'CONFIRMED', 'EXPIRED', 'CANCELLED', 'REFUNDED') NOT NULL,
  price              BIGINT UNSIGNED NOT NULL,
  currency           CHAR(3) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  expires_at         DATETIME(3) NOT NULL,       -- end of the hold (UTC)
  -- The payment: payment_started_at is set (with the key and a new
  -- attempt number) before the gateway is called and cleared once its
  -- outcome is recorded, so that a crash or a lost answer during the call
  -- is settled by asking the gateway, and so that the reaper does not
  -- expire a hold whose payment began in time. Attempt n's Idempotency-Key
  -- is the ticket id (n = 1) or "<ticket id>-<n>".
  payment_key        VARCHAR(200) CHARACTER SET ascii COLLATE ascii_bin NULL,
  payment_attempt    INT UNSIGNED NOT NULL DEFAULT 0,
  payment_started_at DATETIME(3) NULL,
  paid_at            DATETIME(3) NULL,
  confirmed_at       DATETIME(3) NULL,
  ended_at           DATETIME(3) NULL,           -- EXPIRED, CANCELLED or REFUNDED since
  created_at         DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at         DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  -- At most one live ticket per (type, user): only live rows have a
  -- live_user, and NULLs do not collide in a unique key.
  live_user          VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin
                     AS (IF(status IN ('PENDING', 'PAID', 'CONFIRMED'), user_id, NULL)) PERSISTENT,
  UNIQUE KEY uq_tickets_live (ticket_type_id, live_user),
  KEY ix_tickets_type_user (ticket_type_id, user_id),
  KEY ix_tickets_due (status, expires_at),
  KEY ix_tickets_in_flight (payment_started_at),
  CONSTRAINT fk_tickets_type FOREIGN KEY (ticket_type_id) REFERENCES ticket_types (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- One row per confirmed ticket, written by coupon-worker with PAID -> CONFIRMED.
CREATE TABLE IF NOT EXISTS payments (
  id            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  ticket_id     CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  payment_key   VARCHAR(200) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  event_id      CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  amount        BIGINT UNSIGNED NOT NULL,
  currency      CHAR(3) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  paid_at       DATETIME(3) NOT NULL,
  created_at    DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  UNIQUE KEY uq_payments_ticket (ticket_id),
  UNIQUE KEY uq_payments_key (payment_key),
  CONSTRAINT fk_payments_ticket FOREIGN KEY (ticket_id) REFERENCES tickets (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- The transactional outbox, in the column layout of Debezium's outbox event
-- router (id, aggregatetype, aggregateid, type, payload), so that a
-- deployment may relay it by CDC instead of the built-in relay. The rest is
-- the built-in relay's bookkeeping: it claims rows with published_at NULL
-- in seq order (FOR UPDATE SKIP LOCKED, then claimed_until: several relays
-- share the work, none skips a row that committed late, none holds a
-- transaction open while Kafka answers), produces them, and sets
-- published_at after Kafka's delivery report. A relay killed in between
-- leaves its claim to expire: the row is sent again (at least once).
CREATE TABLE IF NOT EXISTS outbox (
  id             CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY, -- the event id
  aggregatetype  VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,  -- 'ticket'
  aggregateid    VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,  -- the ticket id: the message key
  type           VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,  -- 'ticket.paid'
  payload        JSON NOT NULL,                  -- the message value, as written
  seq            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT UNIQUE,
  created_at     DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  published_at   DATETIME(3) NULL,
  claimed_until  DATETIME(3) NULL,
  attempts       INT UNSIGNED NOT NULL DEFAULT 0,
  KEY ix_outbox_unpublished (published_at, seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
