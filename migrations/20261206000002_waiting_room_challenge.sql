-- The proof of work a waiting room asks of each user who joins its line: leading zero bits of
-- SHA-256 (NULL: none).
ALTER TABLE tb_waiting_room ADD COLUMN challenge_difficulty TINYINT UNSIGNED NULL;
