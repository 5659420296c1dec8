-- Orders the writer refused for good (a second active order of one user and product, an
-- amount that does not fit its column): recorded with the reason, in the same transaction as
-- the message's dedupe row, so a redelivery neither writes nor rejects it twice. Their stock
-- goes back to Redis; operators read them at GET /admin/rejected-orders.
CREATE TABLE tb_rejected_order (
    id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    order_no    VARCHAR(40)     NOT NULL,
    user_id     BIGINT UNSIGNED NOT NULL,
    product_id  BIGINT UNSIGNED NOT NULL,
    quantity    INT UNSIGNED    NOT NULL,
    reason      VARCHAR(32)     NOT NULL,
    detail      VARCHAR(255)    NOT NULL,
    created_at  DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    PRIMARY KEY (id),
    UNIQUE KEY uk_order_no (order_no),
    KEY idx_product (product_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
