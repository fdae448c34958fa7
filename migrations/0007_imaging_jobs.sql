-- Imaging-study verifications run as jobs (a study can hold thousands of instances): queued by
-- the API, claimed by workers like the outbox (FOR UPDATE SKIP LOCKED + a lease), finished in
-- the same transaction that records the verification and its outbox row.

CREATE TABLE imaging_job (
    id                uuid PRIMARY KEY,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    state             text NOT NULL DEFAULT 'queued'
                      CHECK (state IN ('queued', 'running', 'done', 'failed')),
    study_ref         text NOT NULL,
    patient_ref       text,
    order_ref         text,
    idempotency_key   text,
    request_sha256    text NOT NULL,
    caller_subject    text,
    caller_client_id  text,
    caller_scopes     text[] NOT NULL DEFAULT '{}',
    attempts          integer NOT NULL DEFAULT 0,
    lease_token       uuid,
    next_attempt_at   timestamptz NOT NULL DEFAULT now(),
    progress          jsonb NOT NULL DEFAULT '{}'::jsonb,
    outcome           text,
    findings          text[] NOT NULL DEFAULT '{}',
    error             jsonb
);
COMMENT ON TABLE imaging_job IS 'One imaging-study verification request and its progress; its id is the verification id. Never holds tokens, images or DICOM values.';
COMMENT ON COLUMN imaging_job.state IS 'queued: waiting (or waiting to retry); running: claimed by a worker under a lease; done: recorded in verification; failed: gave up (see error).';
COMMENT ON COLUMN imaging_job.study_ref IS 'The ImagingStudy checked, as a FHIR reference.';
COMMENT ON COLUMN imaging_job.patient_ref IS 'ImagingStudy.subject, once read from the EHR.';
COMMENT ON COLUMN imaging_job.order_ref IS 'ImagingStudy.basedOn ServiceRequest, once read from the EHR.';
COMMENT ON COLUMN imaging_job.idempotency_key IS 'Client-chosen key; a retry with the same key and caller returns the same job.';
COMMENT ON COLUMN imaging_job.request_sha256 IS 'Hash of the request, to refuse a reused idempotency key with a different request.';
COMMENT ON COLUMN imaging_job.lease_token IS 'Set by each claim; only the holder of the current token may report progress or finish (fencing).';
COMMENT ON COLUMN imaging_job.next_attempt_at IS 'queued: when it is due; running: when its lease runs out and another worker may take it.';
COMMENT ON COLUMN imaging_job.progress IS 'Counts: series/instances expected, listed, fetched, checked.';
COMMENT ON COLUMN imaging_job.outcome IS 'PASSED, FAILED or INCOMPLETE once done.';
COMMENT ON COLUMN imaging_job.findings IS 'Finding codes of the failed checks once done.';
COMMENT ON COLUMN imaging_job.error IS 'The last error as problem fields (code, title, detail, retryable); never patient data.';
CREATE UNIQUE INDEX imaging_job_idempotency_idx
    ON imaging_job (coalesce(caller_client_id, ''), idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX imaging_job_due_idx ON imaging_job (next_attempt_at) WHERE state IN ('queued', 'running');
CREATE INDEX imaging_job_created_idx ON imaging_job (created_at DESC);
CREATE INDEX imaging_job_patient_idx ON imaging_job (patient_ref, created_at DESC);
CREATE INDEX imaging_job_study_idx ON imaging_job (study_ref, created_at DESC);
CREATE INDEX imaging_job_order_idx ON imaging_job (order_ref, created_at DESC);
