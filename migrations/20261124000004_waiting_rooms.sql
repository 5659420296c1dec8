-- A sale's waiting room (README "Waiting room"): a row turns it on, its columns are the room's
-- settings (seckill-protocol's RoomSettings). The product list publishes them; the edge's
-- Durable Object enforces them.
CREATE TABLE tb_waiting_room (
    product_id             BIGINT UNSIGNED NOT NULL,
    new_users_per_interval INT UNSIGNED    NOT NULL,
    interval_secs          INT UNSIGNED    NOT NULL,
    max_active_users       INT UNSIGNED    NOT NULL,
    session_secs           INT UNSIGNED    NOT NULL,
    updated_at             DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    PRIMARY KEY (product_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
