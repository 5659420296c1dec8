-- The reconcile log: every run of POST /admin/products/{id}/reconcile (or `seckill-origin
-- reconcile`) that was not a dry run, with what Redis held before and what it was set to.
CREATE TABLE tb_reconcile_run (
    id                  BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    product_id          BIGINT UNSIGNED NOT NULL,
    redis_stock_before  BIGINT          NULL,
    redis_stock_after   BIGINT          NOT NULL,
    mysql_stock         BIGINT          NOT NULL,
    in_flight_units     BIGINT          NOT NULL,
    in_flight_orders    BIGINT          NOT NULL,
    changes             INT UNSIGNED    NOT NULL,
    created_at          DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    PRIMARY KEY (id),
    KEY idx_product (product_id, id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- One row per key or member the run changed: kind is stock, window, deduction or buyer; item
-- names the field, order number or user; NULL before = added, NULL after = removed.
CREATE TABLE tb_reconcile_change (
    id            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    run_id        BIGINT UNSIGNED NOT NULL,
    kind          VARCHAR(16)     NOT NULL,
    item          VARCHAR(64)     NOT NULL,
    before_value  VARCHAR(64)     NULL,
    after_value   VARCHAR(64)     NULL,
    PRIMARY KEY (id),
    KEY idx_run (run_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
