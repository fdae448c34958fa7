-- The audit record of every verification request, whatever its verdict.

CREATE TABLE verification (
    id                uuid PRIMARY KEY,
    kind              text NOT NULL CHECK (kind IN ('pill', 'imaging')),
    created_at        timestamptz NOT NULL DEFAULT now(),
    idempotency_key   text,
    request_sha256    text NOT NULL,
    caller_subject    text,
    caller_client_id  text,
    caller_scopes     text[] NOT NULL DEFAULT '{}',
    patient_ref       text,
    order_ref         text NOT NULL,
    related_ref       text,
    verdict           text NOT NULL,
    result            jsonb NOT NULL,
    input_sha256      text[] NOT NULL DEFAULT '{}',
    model_versions    jsonb NOT NULL DEFAULT '{}'::jsonb
);
COMMENT ON TABLE verification IS 'One verification request and its outcome; the audit trail auditors read. Never holds tokens or images.';
COMMENT ON COLUMN verification.idempotency_key IS 'Client-chosen key; a retry with the same key and caller returns the first result.';
COMMENT ON COLUMN verification.request_sha256 IS 'Hash of the request, to refuse a reused idempotency key with a different request.';
COMMENT ON COLUMN verification.caller_subject IS 'sub claim of the caller''s token (who asked).';
COMMENT ON COLUMN verification.caller_client_id IS 'client_id/azp of the caller''s token; scopes idempotency keys.';
COMMENT ON COLUMN verification.order_ref IS 'The MedicationRequest or ImagingStudy checked, as a FHIR reference.';
COMMENT ON COLUMN verification.related_ref IS 'MedicationDispense (pill) or other related resource reference, if given.';
COMMENT ON COLUMN verification.input_sha256 IS 'SHA-256 of each photo or DICOM instance examined.';
CREATE UNIQUE INDEX verification_idempotency_idx
    ON verification (coalesce(caller_client_id, ''), idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX verification_patient_idx ON verification (patient_ref, created_at DESC);
CREATE INDEX verification_order_idx ON verification (order_ref, created_at DESC);
CREATE INDEX verification_created_idx ON verification (created_at DESC);
