-- Order events outbox: a row is written in the same transaction as the state change it
-- announces (CREATED, PAID, CANCELLED); a relay publishes unsent rows to seckill-order-event
-- and marks them sent. At least once: a crash between publish and mark publishes again.
CREATE TABLE tb_order_event (
    id         BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    order_no   VARCHAR(40)     NOT NULL,
    event      VARCHAR(16)     NOT NULL,
    payload    TEXT            NOT NULL,
    created_at DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    sent_at    DATETIME(3)     NULL,
    PRIMARY KEY (id),
    -- Each state change happens once per order.
    UNIQUE KEY uk_order_event (order_no, event),
    KEY idx_unsent (sent_at, id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- Messages a consumer gave up on after max reconsume times (%DLQ%<group>), kept for operators
-- to read and replay.
CREATE TABLE tb_dead_letter (
    id              BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    msg_id          VARCHAR(64)     NOT NULL,
    consumer_group  VARCHAR(64)     NOT NULL,
    topic           VARCHAR(128)    NOT NULL,
    tags            VARCHAR(64)     NULL,
    message_key     VARCHAR(64)     NULL,
    body            MEDIUMTEXT      NOT NULL,
    reason          VARCHAR(512)    NOT NULL,
    reconsume_times INT             NOT NULL,
    created_at      DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    replayed_at     DATETIME(3)     NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uk_msg_id (msg_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
