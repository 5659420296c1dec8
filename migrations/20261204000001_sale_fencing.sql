-- What Redis should hold for each sale, kept where a Redis loss cannot erase it.
--
-- load_epoch: the epoch of the sale's last preload or reconcile, written before its scripts
--   run. Every bucket's Redis window carries the epoch it was loaded with; a bucket whose epoch
--   differs (or that is gone) holds a state MySQL did not put there: the sale is frozen.
-- frozen_since / frozen_reason: set when Redis restarted, failed over, lost keys, or sold a
--   unit MySQL does not have; buys are refused (503 SALE_FROZEN) until a reconcile heals it.
-- operation_holder / operation_until: a lease; one preload or reconcile of a sale at a time.
ALTER TABLE tb_seckill_product
    ADD COLUMN load_epoch       VARCHAR(40)  NULL,
    ADD COLUMN frozen_since     DATETIME(3)  NULL,
    ADD COLUMN frozen_reason    VARCHAR(255) NULL,
    ADD COLUMN operation_holder VARCHAR(128) NULL,
    ADD COLUMN operation_until  DATETIME(3)  NULL;

-- The Redis server each name (a URL) last answered as: a new run id (a restart) or replication
-- id (a failover) means writes it acknowledged may be gone, so every loaded sale is frozen.
CREATE TABLE tb_redis_server (
    name        VARCHAR(255) NOT NULL,
    identity    VARCHAR(255) NOT NULL,
    seen_at     DATETIME(3)  NOT NULL,
    PRIMARY KEY (name)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- The highest millisecond (Unix, the minting origin's clock) an order-number node minted, written
-- on every renewal and at release: the node's next holder mints only after it (and after the
-- lease's end) plus the largest clock difference an origin may have with MySQL.
ALTER TABLE tb_origin_node ADD COLUMN last_minted_ms BIGINT NOT NULL DEFAULT 0;
