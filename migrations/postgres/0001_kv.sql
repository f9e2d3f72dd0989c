-- resellgate's state in PostgreSQL: the store's named trees as rows of one table.
-- A (tree, key) pair is unique, so an order claim is a unique row (INSERT ... ON CONFLICT
-- DO NOTHING) taken in its own transaction before the order is forwarded.
CREATE TABLE resellgate_kv (
    tree  text  NOT NULL,
    key   bytea NOT NULL,
    value bytea NOT NULL,
    PRIMARY KEY (tree, key)
);

-- Every change to a record the gateways cache (resellers, upstream accounts, plans) is
-- announced on channel resellgate_changes as 'tree:hexkey' (or 'tree:*' for a key too
-- long for a notification), so every gateway reloads it within milliseconds.
CREATE FUNCTION resellgate_kv_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
    IF r.tree NOT IN ('resellers', 'upstream_accounts', 'plans') THEN
        RETURN NULL;
    END IF;
    IF octet_length(r.key) <= 1000 THEN
        PERFORM pg_notify('resellgate_changes', r.tree || ':' || encode(r.key, 'hex'));
    ELSE
        PERFORM pg_notify('resellgate_changes', r.tree || ':*');
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER resellgate_kv_changes
    AFTER INSERT OR UPDATE OR DELETE ON resellgate_kv
    FOR EACH ROW
    EXECUTE FUNCTION resellgate_kv_notify();
