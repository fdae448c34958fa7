// SMART App Launch 2.2 on top of oidc-provider, as an EHR does it: users and a login form,
// automatic consent (requested scopes intersected with the user's allowed scopes), EHR launch
// ids bound to {patient, encounter, user}, the standalone patient picker, and the launch
// context (patient, encounter, fhirUser, need_patient_banner) in the token response.
// Used by auth_server.mjs; configuration comes from cfg.web_clients, cfg.users, cfg.smart.
import { randomBytes } from 'node:crypto';
import { errors } from 'oidc-provider';

// OIDC-side scopes (not resource scopes): what the grant keeps outside the FHIR audience.
export const SMART_OIDC_SCOPES = [
  'openid', 'fhirUser', 'profile', 'launch', 'launch/patient', 'launch/encounter', 'offline_access',
];
const OIDC = new Set(SMART_OIDC_SCOPES);
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export function createSmart(cfg) {
  const smart = cfg.smart;
  const fhirBase = cfg.default_resource;
  const users = new Map((cfg.users ?? []).map((u) => [u.id, u]));
  const webClients = new Map((cfg.web_clients ?? []).map((c) => [c.client_id, c]));
  const appOrigins = new Set((cfg.web_clients ?? []).flatMap((c) => c.redirect_uris.map((u) => new URL(u).origin)));
  const launches = new Map(); // launch id -> {patient, encounter, user, exp, used}
  const grants = new Map(); // grantId -> {patient, encounter, fhirUser, scope}
  const resourceScope = [...new Set([...users.values()].flatMap((u) => u.scopes.split(' ')))]
    .filter((s) => s && !OIDC.has(s)).join(' ');
  const now = () => Math.floor(Date.now() / 1000);

  function liveLaunch(id) {
    const l = launches.get(id);
    return l && l.exp > now() ? l : undefined;
  }

  const clients = [...webClients.values()].map((c) => ({
    client_id: c.client_id,
    token_endpoint_auth_method: c.token_endpoint_auth_method,
    ...(c.token_endpoint_auth_method === 'private_key_jwt'
      ? { token_endpoint_auth_signing_alg: c.alg, jwks: c.jwks } : {}),
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: c.redirect_uris,
  }));

  const extraParams = {
    // SMART: aud names the FHIR server the token is for; anything else is refused.
    aud: async (ctx, value) => {
      if (value !== fhirBase) throw new errors.InvalidRequest('aud must be the FHIR base URL');
    },
    // EHR launch: a launch id is single-use and short-lived.
    launch: async (ctx, value) => {
      if (value === undefined) return;
      const l = liveLaunch(value);
      if (!l || l.used) throw new errors.InvalidRequest('launch is unknown, expired or already used');
      l.used = true;
    },
  };

  const findAccount = async (ctx, id) => {
    const u = users.get(id);
    if (!u) return undefined;
    return { accountId: id, claims: async () => ({ sub: id, fhirUser: u.fhirUser, name: u.name }) };
  };

  function loginPage(uid, { needPatient, error }) {
    const pwd = [...users.values()].some((u) => u.password);
    return `<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Sign in - test EHR</title>
<style>body{font:1rem/1.5 system-ui,sans-serif;color:#111;background:#fff;max-width:28rem;margin:2rem auto;padding:0 1rem}
label{display:block;margin-top:1rem;font-weight:600}input{font:inherit;width:100%;padding:.5rem;border:1px solid #555}
button{font:inherit;margin-top:1.5rem;padding:.6rem 1.2rem;background:#0b4f9c;color:#fff;border:0}
[role=alert]{color:#a00000;font-weight:600}</style></head><body><main>
<h1>Sign in to the test EHR</h1>
${error ? `<p role="alert">${esc(error)}</p>` : ''}
<form method="post" action="/interaction/${esc(uid)}">
<label for="user">User id</label><input id="user" name="user" autocomplete="username" required>
${pwd ? '<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password">' : ''}
${needPatient ? '<label for="patient">Patient id</label><input id="patient" name="patient" required>' : ''}
<button type="submit">Sign in</button>
</form></main></body></html>`;
  }

  // Consent is automatic: the requested scopes the user may have, nothing else.
  async function grantFor(provider, details, user, context) {
    const requested = String(details.params.scope ?? '').split(' ').filter(Boolean);
    const allowed = new Set(user.scopes.split(' '));
    const granted = requested.filter((s) => allowed.has(s));
    const grant = new provider.Grant({ accountId: user.id, clientId: details.params.client_id });
    // Refused scopes are recorded as such, or the consent prompt would come back for them.
    const split = (list) => [list.filter((s) => OIDC.has(s)), list.filter((s) => !OIDC.has(s))];
    const [oidc, res] = split(granted);
    const [oidcNo, resNo] = split(requested.filter((s) => !allowed.has(s)));
    if (oidc.length) grant.addOIDCScope(oidc.join(' '));
    if (oidcNo.length) grant.rejectOIDCScope(oidcNo.join(' '));
    if (res.length) grant.addResourceScope(fhirBase, res.join(' '));
    if (resNo.length) grant.rejectResourceScope(fhirBase, resNo.join(' '));
    const grantId = await grant.save();
    const has = new Set(granted);
    // Context only where a granted launch scope asks for it (EHR launch: `launch`).
    const ehr = context.ehr && has.has('launch');
    grants.set(grantId, {
      patient: ehr || has.has('launch/patient') ? context.patient : undefined,
      encounter: ehr || has.has('launch/encounter') ? context.encounter : undefined,
      fhirUser: has.has('fhirUser') ? user.fhirUser : undefined,
      scope: granted.join(' '),
    });
    return grantId;
  }

  async function readForm(req) {
    const chunks = [];
    let size = 0;
    for await (const c of req) {
      size += c.length;
      if (size > smart.max_form_bytes) throw new Error('form too large');
      chunks.push(c);
    }
    return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
  }

  function ehrLaunch(ctx) {
    const q = ctx.query;
    let app;
    try { app = new URL(String(q.app ?? '')); } catch { app = undefined; }
    const fail = (msg) => { ctx.status = 400; ctx.type = 'text/plain'; ctx.body = msg; };
    if (!app || !appOrigins.has(app.origin)) return fail('app must be a registered app launch URL');
    if (!q.patient || typeof q.patient !== 'string') return fail('patient is required');
    if (q.user !== undefined && !users.has(q.user)) return fail('unknown user');
    for (const [k, l] of launches) if (l.exp <= now()) launches.delete(k);
    const id = randomBytes(18).toString('base64url');
    launches.set(id, {
      patient: q.patient, encounter: typeof q.encounter === 'string' ? q.encounter : undefined,
      user: q.user, exp: now() + smart.launch_ttl_s, used: false,
    });
    app.searchParams.set('iss', fhirBase);
    app.searchParams.set('launch', id);
    ctx.status = 302;
    ctx.redirect(app.href);
  }

  async function interaction(provider, ctx, uid) {
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    if (details.uid !== uid) throw new errors.SessionNotFound('interaction mismatch');
    const scopes = new Set(String(details.params.scope ?? '').split(' '));
    const launch = details.params.launch ? launches.get(details.params.launch) : undefined;
    const needPatient = !launch && scopes.has('launch/patient');
    const finish = async (user, context) => {
      const grantId = await grantFor(provider, details, user, context);
      await provider.interactionFinished(ctx.req, ctx.res, {
        login: { accountId: user.id }, consent: { grantId },
      }, { mergeWithLastSubmission: false });
      ctx.respond = false;
    };
    if (ctx.method === 'GET') {
      // An EHR launch that names its user: the user is already signed in to the EHR.
      if (launch?.user) return finish(users.get(launch.user), { ...launch, ehr: true });
      ctx.type = 'text/html';
      ctx.body = loginPage(uid, { needPatient });
      return undefined;
    }
    let form;
    try {
      form = await readForm(ctx.req);
    } catch {
      ctx.status = 413; ctx.type = 'text/plain'; ctx.body = 'form too large';
      return undefined;
    }
    const user = users.get(form.get('user') ?? '');
    const bad = (error) => { ctx.status = 401; ctx.type = 'text/html'; ctx.body = loginPage(uid, { needPatient, error }); };
    if (!user || (user.password && form.get('password') !== user.password)) return bad('Unknown user or wrong password.');
    if (launch?.user && launch.user !== user.id) return bad('This launch belongs to another user.');
    const patient = launch ? launch.patient : (form.get('patient') || undefined);
    if (needPatient && !patient) return bad('Choose a patient.');
    return finish(user, { patient, encounter: launch?.encounter, ehr: !!launch });
  }

  function routes(provider) {
    return async (ctx, next) => {
      if (ctx.method === 'GET' && ctx.path === '/ehr/launch') return ehrLaunch(ctx);
      const m = /^\/interaction\/([\w-]+)$/.exec(ctx.path);
      if (m && (ctx.method === 'GET' || ctx.method === 'POST')) return interaction(provider, ctx, m[1]);
      await next();
      // Token response: the launch context next to the tokens (SMART App Launch 2.2, 2.0.8).
      if (ctx.oidc?.route !== 'token' || ctx.status !== 200 || !ctx.body?.access_token) return undefined;
      const c = grants.get(ctx.oidc.entities.AccessToken?.grantId);
      if (!c) return undefined;
      const oidcGranted = c.scope.split(' ').filter((s) => OIDC.has(s));
      ctx.body.scope = [...oidcGranted, ...String(ctx.body.scope ?? '').split(' ').filter(Boolean)].join(' ');
      if (c.patient) ctx.body.patient = c.patient;
      if (c.encounter) ctx.body.encounter = c.encounter;
      ctx.body.need_patient_banner = true;
      return undefined;
    };
  }

  return {
    clients, extraParams, findAccount, routes, webClients, resourceScope,
    tokenClaims: (grantId) => {
      const c = grants.get(grantId);
      if (!c) return {};
      return { ...(c.patient ? { patient: c.patient } : {}), ...(c.fhirUser ? { fhirUser: c.fhirUser } : {}) };
    },
  };
}
