-- NDCs normalised to their 9-digit labeler + product part, so an order's NDC in any of the
-- 10-digit hyphenated forms or the 11-digit form finds the product whatever the package size.
ALTER TABLE product ADD COLUMN ndc_products text[] NOT NULL DEFAULT '{}';
COMMENT ON COLUMN product.ndc_products IS 'Labeler+product part (9 digits) of each NDC in ndcs, set by Verity.';
CREATE INDEX product_ndc_products_idx ON product USING gin (ndc_products);
