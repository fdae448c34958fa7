-- Pixel fingerprints of every checked or archived image, to find the same pixels (or the same
-- SOP Instance UID) under another patient anywhere in the archive.

CREATE TABLE image_fingerprint (
    id               bigserial PRIMARY KEY,
    sop_uid          text NOT NULL,
    series_uid       text,
    study_uid        text NOT NULL,
    patient_key      text NOT NULL,
    frame            integer NOT NULL DEFAULT 0 CHECK (frame >= 0),
    fingerprint      bit(256) NOT NULL,
    source           text NOT NULL CHECK (source IN ('archive', 'verification')),
    verification_id  uuid REFERENCES verification (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CHECK ((source = 'verification') = (verification_id IS NOT NULL))
);
COMMENT ON TABLE image_fingerprint IS 'Perceptual fingerprint of one frame of one DICOM instance; searched by Hamming distance for duplicates across patients. Holds no pixels and no patient identifiers in clear.';
COMMENT ON COLUMN image_fingerprint.sop_uid IS 'SOP Instance UID of the instance.';
COMMENT ON COLUMN image_fingerprint.series_uid IS 'Series Instance UID of the instance, when it has one.';
COMMENT ON COLUMN image_fingerprint.study_uid IS 'Study Instance UID of the instance.';
COMMENT ON COLUMN image_fingerprint.patient_key IS 'Opaque key of the patient identity made by the caller (a keyed hash, never the MRN in clear); equal keys are the same patient.';
COMMENT ON COLUMN image_fingerprint.frame IS 'Frame number (0-based) of a multi-frame instance; 0 for single-frame.';
COMMENT ON COLUMN image_fingerprint.fingerprint IS '256-bit DCT fingerprint of the display frame (service/vision/dicom/fingerprint.py); compared by Hamming distance.';
COMMENT ON COLUMN image_fingerprint.source IS 'archive: enrolled history of the PACS; verification: an image checked by a verification.';
COMMENT ON COLUMN image_fingerprint.verification_id IS 'The verification that checked the image (source verification only).';
COMMENT ON COLUMN image_fingerprint.created_at IS 'When the fingerprint was stored.';
CREATE UNIQUE INDEX image_fingerprint_unique_idx
    ON image_fingerprint (sop_uid, frame, patient_key, source, coalesce(verification_id, '00000000-0000-0000-0000-000000000000'::uuid));
CREATE INDEX image_fingerprint_hnsw_idx ON image_fingerprint USING hnsw (fingerprint bit_hamming_ops);
CREATE INDEX image_fingerprint_sop_idx ON image_fingerprint (sop_uid);
CREATE INDEX image_fingerprint_study_idx ON image_fingerprint (study_uid);
