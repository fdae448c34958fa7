// Real OAuth 2.0 authorization server for the tests: npm oidc-provider, client_credentials only,
// private_key_jwt client authentication (RS384/ES384), JWT access tokens per resource indicator.
// Usage: node auth_server.mjs CONFIG.json   (written by tests/servers/fixtures.py)
import { readFileSync } from 'node:fs';
import Provider, { errors } from 'oidc-provider';

const cfg = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const clientsById = new Map(cfg.clients.map((c) => [c.client_id, c]));

const provider = new Provider(cfg.issuer, {
  clients: cfg.clients.map((c) => ({
    client_id: c.client_id,
    token_endpoint_auth_method: 'private_key_jwt',
    token_endpoint_auth_signing_alg: c.alg,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    jwks: c.jwks,
  })),
  jwks: { keys: [cfg.signing_jwk] },
  clientAuthMethods: ['private_key_jwt'],
  enabledJWA: {
    clientAuthSigningAlgValues: ['RS256', 'RS384', 'RS512', 'PS384', 'ES256', 'ES384'],
  },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: false },
    revocation: { enabled: false },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => cfg.default_resource,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resource, client) => {
        if (!cfg.resources.includes(resource)) {
          throw new errors.InvalidTarget('unknown resource indicator');
        }
        const c = clientsById.get(client.clientId);
        return {
          // scopes outside this list are silently dropped from the grant
          scope: c.scope,
          audience: resource,
          accessTokenTTL: c.token_ttl ?? 300,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: cfg.signing_jwk.alg } },
        };
      },
    },
  },
  extraTokenClaims: (ctx, token) => ({ client_id: token.clientId }),
  ttl: {
    ClientCredentials: (ctx, token) => token.resourceServer?.accessTokenTTL ?? 300,
  },
});
provider.proxy = false;
provider.on('server_error', (ctx, err) => console.error('server_error', err));

provider.listen(cfg.port, '127.0.0.1', () => {
  console.log(`auth server ready on ${cfg.issuer}`);
});
