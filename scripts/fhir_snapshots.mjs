// Generate snapshots for the StructureDefinitions of one package in a FHIR package cache.
// Why a script: fhir-snapshot-generator (Outburn, npm) is the well-kept offline generator; it is
// installed with the test servers (tests/servers/package.json) and driven by
// scripts/build_fhir_package.py. Usage:
//   node fhir_snapshots.mjs <cachePath> <outDir> <id#version>... (first = the package to snapshot)
// Every package must already be in the cache: nothing is downloaded (registry disabled).
import { createRequire } from 'node:module';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '..', 'tests', 'servers', 'package.json'));
const load = async (name) => import(pathToFileURL(require.resolve(name)).href);
const { FhirPackageExplorer } = await load('fhir-package-explorer');
const { FhirSnapshotGenerator } = await load('fhir-snapshot-generator');

const [cachePath, outDir, ...context] = process.argv.slice(2);
const quiet = { info: () => {}, warn: (m) => console.error(`warn: ${m}`), error: (m) => console.error(`error: ${m}`) };
const fpe = await FhirPackageExplorer.create({
  context, cachePath, fhirVersion: '4.0.1', skipExamples: true, logger: quiet,
  registryUrl: 'n/a',
});
const fsg = await FhirSnapshotGenerator.create({ fpe, fhirVersion: '4.0.1', cacheMode: 'none', logger: quiet });
const [id, version] = context[0].split('#');
const pkgDir = path.join(cachePath, `${id}#${version}`, 'package');
mkdirSync(outDir, { recursive: true });
let n = 0;
for (const file of readdirSync(pkgDir).filter((f) => f.startsWith('StructureDefinition-')).sort()) {
  const sd = JSON.parse(readFileSync(path.join(pkgDir, file), 'utf8'));
  const snap = await fsg.getSnapshot(sd.url);
  writeFileSync(path.join(outDir, file), JSON.stringify({ ...sd, snapshot: snap.snapshot }, null, 2) + '\n');
  n += 1;
}
console.log(`${n} snapshots for ${context[0]}`);
