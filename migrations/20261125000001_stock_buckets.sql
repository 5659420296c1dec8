-- Hot-product sharding (README "Hot products"): a sale's Redis stock may be split into several
-- buckets, each under its own hash tag (its own Redis Cluster slot). Fixed when the sale is
-- created, so every origin maps a user to the same bucket for the sale's whole life.
ALTER TABLE tb_seckill_product
    ADD COLUMN stock_buckets INT UNSIGNED NOT NULL DEFAULT 1;

-- A reconcile change names the bucket it is in (0 for an unsharded sale).
ALTER TABLE tb_reconcile_change
    ADD COLUMN bucket INT UNSIGNED NOT NULL DEFAULT 0;
