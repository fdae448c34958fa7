-- Transactional outbox: FHIR writes committed with their verification, delivered by the relay.

CREATE TABLE outbox (
    id                 bigserial PRIMARY KEY,
    verification_id    uuid REFERENCES verification (id) ON DELETE RESTRICT,
    resource_type      text NOT NULL,
    identifier_system  text NOT NULL,
    identifier_value   text NOT NULL,
    payload            jsonb NOT NULL,
    status             text NOT NULL DEFAULT 'pending'
                       CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts           integer NOT NULL DEFAULT 0,
    next_attempt_at    timestamptz NOT NULL DEFAULT now(),
    last_error         text,
    fhir_location      text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    delivered_at       timestamptz,
    UNIQUE (identifier_system, identifier_value)
);
COMMENT ON TABLE outbox IS 'FHIR resources waiting to be written to the EHR; rows are claimed with FOR UPDATE SKIP LOCKED.';
COMMENT ON COLUMN outbox.payload IS 'A FHIR R4 transaction Bundle (resource + Provenance) with conditional creates.';
COMMENT ON COLUMN outbox.identifier_value IS 'Stable business identifier of the main resource; makes delivery idempotent (If-None-Exist).';
COMMENT ON COLUMN outbox.status IS 'pending: to deliver; delivered: the FHIR server accepted it; dead: gave up after max attempts or a permanent rejection.';
COMMENT ON COLUMN outbox.fhir_location IS 'Location of the created resource as returned by the FHIR server.';
CREATE INDEX outbox_due_idx ON outbox (next_attempt_at) WHERE status = 'pending';
CREATE INDEX outbox_verification_idx ON outbox (verification_id);
