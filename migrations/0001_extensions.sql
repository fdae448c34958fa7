-- Extensions Verity needs: pgvector for embeddings, pg_trgm for fuzzy imprint text search.
CREATE EXTENSION IF NOT EXISTS vector;
CREATE EXTENSION IF NOT EXISTS pg_trgm;
