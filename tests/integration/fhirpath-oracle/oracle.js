#!/usr/bin/env node
// fhirpath.js (npm fhirpath, pinned in tests/node, with its R4 model) as the oracle for the C++
// FHIRPath engine. For every resource of the given corpora it evaluates every R4 error-severity
// invariant on every node it applies to, exactly as daemon/fhir/fhirpath.cpp's check_resource()
// walks (the node types come from the same generated schema, daemon/fhir/schema_data.cpp), then
// compares with invariant_dump's output pair by pair (resource, invariant -> pass/fail/ne).
//
//   node oracle.js DUMP_EXE SHARED_FHIR_DIR [--synthea-sample N]
//
// Outcomes: [true] or [] -> pass (an undecidable comparison is not a failure), [false] -> fail,
// an exception or a non-boolean collection of several items -> ne (not evaluated).
// Exit 1 on any disagreement that is not in KNOWN below (each with the reason the spec sides
// with the C++ engine), or when a KNOWN entry no longer occurs (keep the list true).
'use strict';
process.env.TZ = 'UTC';  // fhirpath.js reads dates without a zone as local time; C++ as UTC
const fs = require('fs');
const path = require('path');
const { execFileSync } = require('child_process');
const nodeModules = path.resolve(__dirname, '../../node/node_modules');
const fhirpath = require(path.join(nodeModules, 'fhirpath'));
const model = require(path.join(nodeModules, 'fhirpath/fhir-context/r4'));

// Disagreements where the FHIR/FHIRPath specifications side with the C++ engine.
const KNOWN = [
  {
    key: /^que-7@/, file: /Questionnaire-bb\.json/, cpp: /^pass$/, js: /^fail$/,
    why: "answerBoolean `is Boolean`: the value of a FHIR boolean is a System.Boolean (FHIR R4 " +
      "fhirpath.html: FHIR primitives map to System types); fhirpath.js answers false unless the " +
      "type is written `boolean` (R5 rewrote que-7 as `answer is boolean` for that reason).",
  },
  {
    key: /^dom-3@/, file: /./, cpp: /^(pass|fail)$/, js: /^ne$/,
    why: "dom-3 applies `descendants().as(canonical)` to a collection; fhirpath.js raises 'Expected " +
      "singleton on left side of as'. The R4 invariant is written for `as` filtering a collection " +
      "(what the HL7 Java validator does; R5 spells it ofType()), so C++ filters like ofType().",
  },
  {
    key: /^ctm-1@/, file: /./, cpp: /^(pass|fail)$/, js: /^ne$/,
    why: "fhirpath.js only runs resolve() in async mode; C++ resolves references within the " +
      "resource (contained, Bundle entries) as FHIR's resolve() defines, empty otherwise.",
  },
  {
    key: /^eld-1[69]@/, file: /./, cpp: /^(pass|fail)$/, js: /^ne$/,
    why: "the regexes contain `\\-` and `\\@`, literal escapes in FHIRPath (PCRE-style) regexes; " +
      "fhirpath.js compiles them with the JavaScript 'u' flag, which rejects them (Invalid escape).",
  },
  {
    key: /^ras-1@/, file: /./, cpp: /^pass$/, js: /^ne$/,
    why: "ras-1 is declared on probability[x]; on probabilityDecimal `low` is not an element, and " +
      "FHIRPath N1 navigation of a name that is absent yields empty (C++), while fhirpath.js's " +
      "model raises an error.",
  },
];

const [dumpExe, shared] = process.argv.slice(2);
let sample = 0;
const si = process.argv.indexOf('--synthea-sample');
if (si > 0) sample = Number(process.argv[si + 1]);
if (!dumpExe || !shared) {
  console.error('usage: oracle.js DUMP_EXE SHARED_FHIR_DIR [--synthea-sample N]');
  process.exit(2);
}

// ---- the generated schema (T/E/I lines of the blob) ----
const src = fs.readFileSync(path.resolve(__dirname, '../../../daemon/fhir/schema_data.cpp'), 'utf8');
const blob = [...src.matchAll(/R"FE\(([\s\S]*?)\)FE"/g)].map((m) => m[1]).join('');
const types = new Map();  // name -> {kind, elements: Map(json -> {type, choiceBase}), inv: [], onEl: []}
let cur = null;
for (const line of blob.split('\n')) {
  const f = line.split('\t');
  if (f[0] === 'T') {
    cur = { name: f[1], kind: f[2], elements: new Map(), inv: [], onEl: [] };
    types.set(f[1], cur);
  } else if (f[0] === 'E') {
    cur.elements.set(f[1], { type: f[2], many: f[4] === '*', choiceBase: f[5] });
  }
}
const invariants = [];
for (const line of blob.split('\n')) {
  const f = line.split('\t');
  if (f[0] !== 'I') continue;
  const t = types.get(f[1]);
  if (!t) continue;
  const inv = { type: f[1], element: f[2], key: f[3], expression: f[4] };
  inv.id = `${inv.key}@${inv.type}${inv.element ? '/' + inv.element : ''}`;
  invariants.push(inv);
  (inv.element ? t.onEl : t.inv).push(inv);
}

const compiled = new Map();
function compiledFor(inv, base) {
  const k = inv.id + '|' + base;
  if (!compiled.has(k)) {
    try {
      compiled.set(k, fhirpath.compile({ base, expression: inv.expression }, model, { traceFn: () => {} }));
    } catch (e) {
      compiled.set(k, null);
    }
  }
  return compiled.get(k);
}

function outcome(inv, base, node, env) {
  const fn = compiledFor(inv, base);
  if (!fn) return 1;
  try {
    const r = fn(node, env);
    if (r.length === 0) return 0;
    if (r.length > 1) return 1;
    return r[0] === false ? 2 : 0;
  } catch (e) {
    if (process.env.ORACLE_DEBUG) console.error(`${inv.id} on ${base}: ${e.message}`);
    return 1;
  }
}

function walkResource(res, nested, contained, env, agg) {
  const t = types.get(res.resourceType);
  if (!t || t.kind !== 'R') return;
  const e = nested ? { resource: res, rootResource: contained ? env.rootResource : res } : env;
  visit(res, t, res.resourceType, e, agg);
}

function record(agg, inv, v) {
  const prev = agg.get(inv.id);
  if (prev === undefined || v > prev) agg.set(inv.id, v);
}

function visit(node, t, base, env, agg) {
  for (const inv of t.inv) record(agg, inv, outcome(inv, base, node, env));
  if (t.kind === 'P' || node === null || typeof node !== 'object') return;
  for (const key of Object.keys(node)) {
    if (key === 'resourceType' || key === '') continue;
    const under = key[0] === '_';
    const name = under ? key.slice(1) : key;
    const el = t.elements.get(name);
    if (!el) continue;
    const et = types.get(el.type);
    if (!et) continue;
    if (under && (node[name] !== undefined || et.kind !== 'P')) continue;
    let vals = node[name];
    const exts = et.kind === 'P' ? node['_' + name] : undefined;
    const arr = Array.isArray(vals) || Array.isArray(exts);
    const n = arr ? Math.max(Array.isArray(vals) ? vals.length : 0, Array.isArray(exts) ? exts.length : 0) : 1;
    for (let i = 0; i < n; i++) {
      const v = arr ? (Array.isArray(vals) ? vals[i] : undefined) : vals;
      const x = arr ? (Array.isArray(exts) ? exts[i] : undefined) : exts;
      if ((v === undefined || v === null) && (x === undefined || x === null)) continue;
      const elBase = `${t.name}.${el.choiceBase || name}`;
      for (const inv of t.onEl) {
        const en = inv.element;
        if (en === name || (en.endsWith('[x]') && el.choiceBase && en.slice(0, -3) === el.choiceBase))
          record(agg, inv, outcome(inv, et.kind === 'P' || et.kind === 'C' ? el.type : elBase, v, env));
      }
      if (v === undefined || v === null) continue;
      if (el.type === 'Resource') {
        walkResource(v, true, name === 'contained', env, agg);
      } else if (et.kind === 'R') {
        walkResource(v, true, name === 'contained', env, agg);
      } else {
        visit(v, et, et.kind === 'B' ? et.name : el.type, env, agg);
      }
    }
  }
}

// ---- corpora ----
const files = [];
const ex = path.join(shared, 'examples-r4');
for (const f of fs.readdirSync(ex).sort()) if (f.endsWith('.json') && f !== 'manifest.json') files.push(path.join(ex, f));
const sy = path.join(shared, 'synthea-10-patients');
const syntheaFiles = fs.readdirSync(sy).filter((f) => f.endsWith('.ndjson') && f !== 'log.ndjson').sort();
const tc = path.join(shared, 'fhir-test-cases-r4');
const manifest = JSON.parse(fs.readFileSync(path.join(tc, 'manifest.json'), 'utf8'));
for (const t of manifest.tests) if (t.class === 'valid' && t.file.endsWith('.json')) files.push(path.join(tc, t.file));

// Synthea: every resource, or with --synthea-sample N every Nth line of each file (written to a
// temporary NDJSON per file so that both engines read the same lines).
const tmp = fs.mkdtempSync(path.join(require('os').tmpdir(), 'fp-oracle-'));
for (const f of syntheaFiles) {
  if (!sample) {
    files.push(path.join(sy, f));
    continue;
  }
  const lines = fs.readFileSync(path.join(sy, f), 'utf8').split('\n').filter((l, i) => l.trim() && i % sample === 0);
  const out = path.join(tmp, f);
  fs.writeFileSync(out, lines.join('\n') + '\n');
  files.push(out);
}

const js = new Map();
let resources = 0;
for (const f of files) {
  const text = fs.readFileSync(f, 'utf8');
  const lines = f.endsWith('.json') ? [text] : text.split('\n');
  lines.forEach((l, i) => {
    if (!l.trim()) return;
    let res;
    try {
      res = JSON.parse(l);
    } catch (e) {
      return;
    }
    if (!types.has(res.resourceType)) return;
    resources++;
    const agg = new Map();
    walkResource(res, false, false, { resource: res, rootResource: res }, agg);
    for (const [k, v] of agg) js.set(`${f}#${i + 1}\t${k}`, ['pass', 'ne', 'fail'][v]);
  });
}

const cpp = new Map();
const out = execFileSync(dumpExe, files, { maxBuffer: 1 << 30, encoding: 'utf8' });
for (const line of out.split('\n')) {
  if (!line) continue;
  const [where, key, o] = line.split('\t');
  cpp.set(`${where}\t${key}`, o);
}

const counts = { pairs: 0, agree: 0, known: 0, disagree: 0 };
const byOutcome = { pass: 0, fail: 0, ne: 0 };
const knownSeen = new Set();
const bad = [];
for (const k of new Set([...js.keys(), ...cpp.keys()])) {
  counts.pairs++;
  const a = cpp.get(k) || 'absent', b = js.get(k) || 'absent';
  if (a === b) {
    counts.agree++;
    byOutcome[a] = (byOutcome[a] || 0) + 1;
    continue;
  }
  const [where, key] = k.split('\t');
  const kn = KNOWN.findIndex((x) => x.key.test(key) && x.file.test(where) && x.cpp.test(a) && x.js.test(b));
  if (kn >= 0) {
    counts.known++;
    knownSeen.add(kn);
    continue;
  }
  counts.disagree++;
  bad.push(`${where} ${key}: C++ ${a}, fhirpath.js ${b}`);
}
console.log(`fhirpath oracle: ${files.length} files, ${resources} resources, ${invariants.length} invariants` +
  (sample ? ` (Synthea sampled: every ${sample}th line)` : ''));
console.log(`pairs ${counts.pairs}: agree ${counts.agree} (pass ${byOutcome.pass}, fail ${byOutcome.fail}, ` +
  `not evaluated ${byOutcome.ne}), known disagreements ${counts.known}, other disagreements ${counts.disagree}`);
KNOWN.forEach((k, i) => console.log(`known: ${k.key} ${k.file}: C++ ${k.cpp}, fhirpath.js ${k.js}${knownSeen.has(i) ? '' : ' (NOT SEEN)'} - ${k.why}`));
for (const b of bad.slice(0, 200)) console.log('DISAGREE ' + b);
fs.rmSync(tmp, { recursive: true, force: true });
process.exit(counts.disagree === 0 && knownSeen.size === KNOWN.length ? 0 : 1);
