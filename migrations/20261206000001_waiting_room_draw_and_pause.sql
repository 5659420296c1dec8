-- A waiting room's pre-queue (opens this many seconds before the sale's start; its users are
-- put in a random order at the start), the Durable Objects it is spread over, and the
-- operator's pause (nobody admitted, everyone keeps their place).
ALTER TABLE tb_waiting_room
    ADD COLUMN pre_queue_secs INT UNSIGNED NOT NULL DEFAULT 0,
    ADD COLUMN shards INT UNSIGNED NOT NULL DEFAULT 1,
    ADD COLUMN paused TINYINT(1) NOT NULL DEFAULT 0;
