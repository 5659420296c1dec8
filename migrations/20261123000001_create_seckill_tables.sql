-- Flash-sale schema. MySQL 8 and MariaDB 10.11 both run this file unchanged.

CREATE TABLE tb_seckill_product (
    id             BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    name           VARCHAR(100)    NOT NULL,
    price          DECIMAL(12, 2)  NOT NULL,
    initial_stock  INT UNSIGNED    NOT NULL,
    -- Units not yet taken by a written order. Only the order writer (down) and the
    -- canceller (up) change it, each guarded so it never goes below zero.
    stock          INT UNSIGNED    NOT NULL,
    per_user_limit INT UNSIGNED    NOT NULL DEFAULT 1,
    version        BIGINT UNSIGNED NOT NULL DEFAULT 0,
    start_at       DATETIME(3)     NULL,
    end_at         DATETIME(3)     NULL,
    created_at     DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    PRIMARY KEY (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE tb_seckill_order (
    id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    order_no     VARCHAR(40)     NOT NULL,
    user_id      BIGINT UNSIGNED NOT NULL,
    product_id   BIGINT UNSIGNED NOT NULL,
    quantity     INT UNSIGNED    NOT NULL,
    amount       DECIMAL(14, 2)  NOT NULL,
    status       VARCHAR(16)     NOT NULL,
    created_at   DATETIME(3)     NOT NULL,
    expire_at    DATETIME(3)     NOT NULL,
    paid_at      DATETIME(3)     NULL,
    cancelled_at DATETIME(3)     NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uk_order_no (order_no),
    KEY idx_product_status (product_id, status),
    KEY idx_user (user_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE tb_stock_log (
    id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    order_no     VARCHAR(40)     NOT NULL,
    product_id   BIGINT UNSIGNED NOT NULL,
    before_stock INT UNSIGNED    NOT NULL,
    after_stock  INT UNSIGNED    NOT NULL,
    reason       VARCHAR(16)     NOT NULL,
    created_at   DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    PRIMARY KEY (id),
    -- One ORDER row and at most one CANCEL row per order.
    UNIQUE KEY uk_order_reason (order_no, reason),
    KEY idx_product (product_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE tb_user_seckill (
    id         BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    user_id    BIGINT UNSIGNED NOT NULL,
    product_id BIGINT UNSIGNED NOT NULL,
    order_no   VARCHAR(40)     NOT NULL,
    created_at DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    PRIMARY KEY (id),
    -- At most one active purchase per user and product; the canceller deletes the row.
    UNIQUE KEY uk_user_product (user_id, product_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- Idempotency: a consumer inserts (group, key) in the same transaction as its business
-- change, so a redelivered message finds the row and changes nothing.
CREATE TABLE tb_message_dedupe (
    id             BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    consumer_group VARCHAR(64)     NOT NULL,
    message_key    VARCHAR(64)     NOT NULL,
    created_at     DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    PRIMARY KEY (id),
    UNIQUE KEY uk_group_key (consumer_group, message_key)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
