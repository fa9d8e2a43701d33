-- A user's id in the operator's system of record (an HR system, a CRM): optional,
-- unique among live users, so bulk imports and the API can find people by it.
ALTER TABLE users ADD COLUMN external_id text
    CONSTRAINT users_external_id_format
    CHECK (length(external_id) BETWEEN 1 AND 255 AND external_id !~ '[[:cntrl:]]');
CREATE UNIQUE INDEX users_external_id_live_key ON users (external_id)
    WHERE deleted_at IS NULL AND external_id IS NOT NULL;
