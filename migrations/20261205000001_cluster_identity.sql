-- A Redis Cluster's identity lists every master (address, run id, replication id): longer than
-- one server's. TEXT holds any cluster; the fence compares it whole.
ALTER TABLE tb_redis_server MODIFY identity TEXT NOT NULL;
