-- The people's side (service/web): server-side sessions of the SMART-launched app, the images a
-- person looks at beside a verdict, and the decisions people record on verifications.

CREATE TABLE web_session (
    id_hash       text PRIMARY KEY,
    state         text NOT NULL CHECK (state IN ('pending', 'active')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    data          jsonb NOT NULL
);
CREATE INDEX web_session_expiry_idx ON web_session (expires_at);
COMMENT ON TABLE web_session IS 'One browser session: pending (an authorization under way: state, PKCE verifier) or active (the user''s EHR token and launch context). The cookie carries the random id, signed; only its SHA-256 is stored.';
COMMENT ON COLUMN web_session.data IS 'Pending: state, code_verifier, iss, launch. Active: access token, expiry, granted scopes, patient, encounter, fhirUser, CSRF token. Never logged.';

CREATE TABLE verification_image (
    verification_id  uuid NOT NULL REFERENCES verification (id) ON DELETE CASCADE,
    name             text NOT NULL CHECK (name ~ '^[a-z]+-[0-9]+(-[0-9]+)?$'),
    media_type       text NOT NULL CHECK (media_type IN ('image/png', 'image/jpeg', 'image/webp')),
    data             bytea NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (verification_id, name)
);
COMMENT ON TABLE verification_image IS 'Pictures kept with a verification for the people who review it: the submitted photos (photo-N), the pills as Verity cropped them (pill-N), imaging thumbnails (image-N).';

CREATE TABLE verification_decision (
    id               uuid PRIMARY KEY,
    verification_id  uuid NOT NULL UNIQUE REFERENCES verification (id) ON DELETE RESTRICT,
    created_at       timestamptz NOT NULL DEFAULT now(),
    action           text NOT NULL,
    code             text NOT NULL,
    reason           text,
    author_ref       text NOT NULL,
    author_display   text,
    caller_client_id text,
    outbox_id        bigint REFERENCES outbox (id) ON DELETE SET NULL
);
CREATE INDEX verification_decision_created_idx ON verification_decision (created_at);
COMMENT ON TABLE verification_decision IS 'What a person decided about a verification that needed attention (one per verification); written to the EHR as DetectedIssue.mitigation through the outbox.';
COMMENT ON COLUMN verification_decision.code IS 'v3 ActDetectedIssueManagementCode.';
COMMENT ON COLUMN verification_decision.author_ref IS 'The person (fhirUser from the SMART launch), e.g. Practitioner/123.';

CREATE TABLE reference_acceptance (
    id                  bigserial PRIMARY KEY,
    verification_id     uuid NOT NULL REFERENCES verification (id) ON DELETE RESTRICT,
    image_name          text NOT NULL,
    product_id          text NOT NULL REFERENCES product (id) ON DELETE CASCADE,
    reference_image_id  bigint REFERENCES reference_image (id) ON DELETE SET NULL,
    accepted_by         text NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (verification_id, image_name)
);
COMMENT ON TABLE reference_acceptance IS 'A dispensing photo a library manager accepted as a new reference view of a product, after a person confirmed the pill: the library learning from real dispensing, audited.';
