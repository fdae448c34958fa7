-- Imaging embeddings: one row per image (frame) Verity knows, labelled references a hospital
-- enrolled and the archive history of checked and enrolled studies, and its embedding per
-- model version (pgvector; one partial HNSW cosine index per model version, made on first use).

CREATE TABLE image_record (
    id               bigserial PRIMARY KEY,
    sop_uid          text NOT NULL,
    series_uid       text,
    study_uid        text NOT NULL,
    patient_key      text NOT NULL,
    frame            integer NOT NULL DEFAULT 0 CHECK (frame >= 0),
    modality         text,
    body_part        text,
    laterality       text CHECK (laterality IN ('R', 'L', 'B', 'U')),
    view             text,
    labelled         boolean NOT NULL DEFAULT false,
    source           text NOT NULL CHECK (source IN ('reference', 'archive', 'verification')),
    verification_id  uuid REFERENCES verification (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    canvas           bytea NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CHECK ((source = 'verification') = (verification_id IS NOT NULL)),
    CHECK (NOT labelled OR (modality IS NOT NULL AND body_part IS NOT NULL))
);
COMMENT ON TABLE image_record IS 'One frame of one DICOM instance known to Verity: a labelled reference (what the pixels show) or archive history (for near-duplicates and priors). Holds the model input canvas, no patient identifiers in clear.';
COMMENT ON COLUMN image_record.patient_key IS 'Opaque key of the patient identity (a hash, never the MRN in clear); equal keys are the same patient.';
COMMENT ON COLUMN image_record.modality IS 'DICOM Modality the image is of (labelled: what the pixels show; else what the header said).';
COMMENT ON COLUMN image_record.body_part IS 'DICOM BodyPartExamined defined term the image is of (CID 4031).';
COMMENT ON COLUMN image_record.laterality IS 'R, L, B (both) or U (unpaired), when known.';
COMMENT ON COLUMN image_record.view IS 'Free view label of a reference (e.g. PA, lateral, axial), when given.';
COMMENT ON COLUMN image_record.labelled IS 'True when modality and body part were given by a person or a correctly labelled enrolled study: the image is a reference for content checks.';
COMMENT ON COLUMN image_record.source IS 'reference: enrolled to the imaging reference library; archive: enrolled PACS history; verification: an image checked by a verification.';
COMMENT ON COLUMN image_record.canvas IS 'PNG of the display frame letterboxed to the model input canvas (service/vision/dicom/canvas.py): re-embedding needs no PACS.';
CREATE UNIQUE INDEX image_record_unique_idx
    ON image_record (sop_uid, frame, patient_key, source, coalesce(verification_id, '00000000-0000-0000-0000-000000000000'::uuid));
CREATE INDEX image_record_study_idx ON image_record (study_uid);

CREATE TABLE image_embedding (
    record_id      bigint NOT NULL REFERENCES image_record (id) ON DELETE CASCADE,
    model_version  text NOT NULL,
    patient_key    text NOT NULL,
    labelled       boolean NOT NULL,
    reference      boolean NOT NULL DEFAULT false,
    embedding      vector NOT NULL,
    PRIMARY KEY (record_id, model_version)
);
COMMENT ON TABLE image_embedding IS 'Embedding of an image_record under one model version; patient_key, labelled and reference (source = reference) are copied from the record so that filtered HNSW scans need no join.';
CREATE INDEX image_embedding_version_idx ON image_embedding (model_version);
