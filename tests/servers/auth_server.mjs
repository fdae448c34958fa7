// Real OAuth 2.0 authorization server for the tests: npm oidc-provider. Backend clients:
// client_credentials with private_key_jwt (RS384/ES384). Web clients (cfg.web_clients): SMART App
// Launch 2.2, authorization code + PKCE S256 (smart_launch.mjs). JWT access tokens per resource.
// Usage: node auth_server.mjs CONFIG.json   (written by tests/servers/fixtures.py)
import { readFileSync } from 'node:fs';
import Provider, { errors } from 'oidc-provider';
import { createSmart, SMART_OIDC_SCOPES } from './smart_launch.mjs';

const cfg = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const clientsById = new Map(cfg.clients.map((c) => [c.client_id, c]));
const smart = createSmart(cfg);
const ttl = cfg.smart;

const provider = new Provider(cfg.issuer, {
  clients: [...cfg.clients.map((c) => ({
    client_id: c.client_id,
    token_endpoint_auth_method: 'private_key_jwt',
    token_endpoint_auth_signing_alg: c.alg,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    jwks: c.jwks,
  })), ...smart.clients],
  jwks: { keys: [cfg.signing_jwk] },
  clientAuthMethods: ['private_key_jwt', 'none'],
  cookies: { keys: [cfg.cookie_key] },
  scopes: SMART_OIDC_SCOPES,
  claims: { openid: ['sub'], fhirUser: ['fhirUser'], profile: ['name'] },
  extraParams: smart.extraParams,
  findAccount: smart.findAccount,
  pkce: { required: () => true }, // oidc-provider 9 knows S256 only: `plain` is refused
  // Every authorization asks for a fresh consent, so a new launch context is always bound.
  loadExistingGrant: async (ctx) => {
    const id = ctx.oidc.result?.consent?.grantId;
    return id ? ctx.oidc.provider.Grant.find(id) : undefined;
  },
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
      defaultResource: () => cfg.default_resource, // SMART `aud` must equal it (smart_launch.mjs)
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resource, client) => {
        if (!cfg.resources.includes(resource)) {
          throw new errors.InvalidTarget('unknown resource indicator');
        }
        const web = smart.webClients.get(client.clientId);
        if (web && resource !== cfg.default_resource) {
          throw new errors.InvalidTarget('web clients get tokens for the FHIR server only');
        }
        const c = web ? { scope: smart.resourceScope, token_ttl: ttl.access_token_ttl_s } : clientsById.get(client.clientId);
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
  extraTokenClaims: (ctx, token) => ({ client_id: token.clientId, ...smart.tokenClaims(token.grantId) }),
  ttl: {
    ClientCredentials: (ctx, token) => token.resourceServer?.accessTokenTTL ?? 300,
    AccessToken: (ctx, token) => token.resourceServer?.accessTokenTTL ?? ttl.access_token_ttl_s,
    AuthorizationCode: ttl.code_ttl_s,
    IdToken: ttl.access_token_ttl_s,
    Interaction: ttl.interaction_ttl_s,
    Session: ttl.session_ttl_s,
    Grant: ttl.session_ttl_s,
    RefreshToken: ttl.session_ttl_s,
  },
});
provider.use(smart.routes(provider));
provider.proxy = false;
provider.on('server_error', (ctx, err) => console.error('server_error', err));

provider.listen(cfg.port, '127.0.0.1', () => {
  console.log(`auth server ready on ${cfg.issuer}`);
});
