-- The reference library: products, their reference images, and embeddings per model version.

CREATE TABLE product (
    id              text PRIMARY KEY,
    name            text,
    ndcs            text[] NOT NULL DEFAULT '{}',
    rxcui           text,
    ingredients     jsonb NOT NULL DEFAULT '[]'::jsonb,
    clinical_drug   text,
    dose_form       text,
    imprint         text,
    imprint_source  text CHECK (imprint_source IN ('label', 'ocr')),
    colors          text[] NOT NULL DEFAULT '{}',
    shape           text,
    size_mm         real CHECK (size_mm IS NULL OR size_mm > 0),
    labeler         text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE product IS 'A dispensable product (one NDC package family) that Verity can recognise.';
COMMENT ON COLUMN product.id IS 'Stable product id chosen by the importer (e.g. ndc_00002-3228-30).';
COMMENT ON COLUMN product.ingredients IS 'Active ingredients: [{"name": "METFORMIN", "strength": "500 mg"}].';
COMMENT ON COLUMN product.clinical_drug IS 'Normalised ingredients + strengths + dose form; products with equal keys are the same clinical drug.';
COMMENT ON COLUMN product.imprint IS 'Imprint text as labelled, or as read by OCR from a reference image.';
COMMENT ON COLUMN product.imprint_source IS 'label: from product data; ocr: read from a reference image by Verity.';
CREATE INDEX product_ndcs_idx ON product USING gin (ndcs);
CREATE INDEX product_rxcui_idx ON product (rxcui) WHERE rxcui IS NOT NULL;
CREATE INDEX product_clinical_drug_idx ON product (clinical_drug) WHERE clinical_drug IS NOT NULL;
CREATE INDEX product_imprint_trgm_idx ON product USING gin (imprint gin_trgm_ops);

CREATE TABLE reference_image (
    id          bigserial PRIMARY KEY,
    product_id  text NOT NULL REFERENCES product (id) ON DELETE CASCADE,
    side        text NOT NULL DEFAULT 'unknown' CHECK (side IN ('front', 'back', 'unknown')),
    sha256      text NOT NULL,
    source      text,
    width       integer NOT NULL CHECK (width > 0),
    height      integer NOT NULL CHECK (height > 0),
    image       bytea,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (product_id, sha256)
);
COMMENT ON TABLE reference_image IS 'An enrolled view of a product; its pixels are kept so the library can be re-embedded when the model changes.';
COMMENT ON COLUMN reference_image.source IS 'Where the image came from (file name or upload), never patient data.';

CREATE TABLE reference_embedding (
    image_id       bigint NOT NULL REFERENCES reference_image (id) ON DELETE CASCADE,
    product_id     text NOT NULL REFERENCES product (id) ON DELETE CASCADE,
    model_version  text NOT NULL,
    view           text NOT NULL DEFAULT 'front',
    embedding      vector NOT NULL,
    features       jsonb NOT NULL DEFAULT '{}'::jsonb,
    imprint_read   text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (image_id, model_version, view)
);
COMMENT ON TABLE reference_embedding IS 'Embedding of one view (rotation/crop) of a reference image under one model version; searches only compare vectors of the same model_version.';
COMMENT ON COLUMN reference_embedding.embedding IS 'Unit-normalised vector; HNSW cosine indexes are created per model_version with the model''s dimension.';
COMMENT ON COLUMN reference_embedding.features IS 'Hand-made descriptors of the reference pill: colour, shape, size.';
COMMENT ON COLUMN reference_embedding.imprint_read IS 'Imprint text read by OCR from this view.';
CREATE INDEX reference_embedding_product_idx ON reference_embedding (model_version, product_id);
