-- Node ids of the origin instances (the 10-bit middle of every order number), leased with an
-- expiry on MySQL's clock and renewed while the instance runs. MySQL, not Redis: a Redis flush
-- or failover must not hand a node id that is still minting to a second instance. A node whose
-- lease ran out is taken over; its new holder mints from `lease_until` on, so it cannot repeat a
-- millisecond its previous holder used.
CREATE TABLE tb_origin_node (
    node_id     SMALLINT UNSIGNED NOT NULL,
    holder      VARCHAR(128)      NOT NULL,
    lease_until DATETIME(3)       NOT NULL,
    claimed_at  DATETIME(3)       NOT NULL,
    PRIMARY KEY (node_id),
    KEY idx_lease_until (lease_until)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
