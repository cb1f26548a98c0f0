// healthlake-local against the official AWS SDK for JavaScript v3 (@aws-sdk/client-s3 and
// @aws-sdk/client-healthlake 3.1048.0, from tests/node/node_modules).
//
//   node sdk.mjs <path to healthlake-local>
//
// Starts the emulator in a temp dir on 127.0.0.1:<free port>, then, with the SDKs' default
// settings (flexible checksums on, so PutObject/UploadPart carry x-amz-checksum-crc32 and the SDK
// signs whatever headers it chooses):
//   - uploads an NDJSON file with valid and invalid resources (PutObject, SSE-KMS headers),
//   - starts an import twice with the same ClientToken (same JobId both times), follows it to
//     COMPLETED_WITH_ERRORS, checks JobProgressReport, ListFHIRImportJobs and
//     DescribeFHIRDatastore,
//   - reads manifest.json and FAILURE/ through the S3 client and checks the counts,
//   - runs a multipart upload with ListParts (paginated) and AbortMultipartUpload, and a second
//     one to completion (ETag "<md5 of md5s>-2", CRC32C composite checksum),
//   - imports again with a new token and sees the duplicate through the debug endpoint,
//   - sees a wrong secret rejected by both services.
// Any mismatch throws, so the process exits non-zero and CTest fails.
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, existsSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import assert from "node:assert/strict";
import { Readable } from "node:stream";

const require = createRequire(new URL("../../node/package.json", import.meta.url));
const S3 = require("@aws-sdk/client-s3");
const HL = require("@aws-sdk/client-healthlake");

const binary = process.argv[2];
if (!binary || !existsSync(binary)) {
  console.error("usage: node sdk.mjs <healthlake-local binary>");
  process.exit(2);
}

const AK = "AKIAHLLOCALSDKTEST01";
const SK = "sdk-test-secret-key-0000000000000000000";
const REGION = "us-east-1";
const DS = "0123456789abcdef0123456789abcdef";
const ROLE = "arn:aws:iam::123456789012:role/HealthLakeImport";
const KMS = "arn:aws:kms:us-east-1:123456789012:key/0a1b2c3d-1111-2222-3333-444455556666";

const dir = mkdtempSync(join(tmpdir(), "hll-sdk-"));
const portFile = join(dir, "port");
const child = spawn(binary, [
  "--data", join(dir, "data"), "--listen", "127.0.0.1:0", "--port-file", portFile,
  "--access-key", AK, "--secret-key", SK, "--region", REGION, "--datastore", DS,
  "--bucket", "fhir-landing", "--bucket", "fhir-results",
  "--job-timing", "submitted=0.05s,queued=0.05s,run=0.2s",
], { stdio: ["ignore", "ignore", "inherit"] });
let exited = false;
child.on("exit", () => { exited = true; });

async function waitPort() {
  for (let i = 0; i < 600; i++) {
    if (exited) throw new Error("healthlake-local exited during start-up");
    if (existsSync(portFile)) {
      const p = parseInt(readFileSync(portFile, "utf8"), 10);
      if (p > 0) return p;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error("healthlake-local did not start");
}

function s3client(endpoint, secret = SK) {
  return new S3.S3Client({
    region: REGION, endpoint, forcePathStyle: true,
    credentials: { accessKeyId: AK, secretAccessKey: secret },
    maxAttempts: 1,
  });
}
function hlclient(endpoint, secret = SK) {
  return new HL.HealthLakeClient({
    region: REGION, endpoint,
    credentials: { accessKeyId: AK, secretAccessKey: secret },
    maxAttempts: 1,
  });
}

async function expectError(promise, name) {
  try {
    await promise;
  } catch (e) {
    assert.equal(e.name, name, `expected ${name}, got ${e.name}: ${e.message}`);
    return e;
  }
  throw new Error(`expected ${name}, but the call succeeded`);
}

const steps = [];
function step(s) { steps.push(s); console.log("ok -", s); }

async function main() {
  const port = await waitPort();
  const endpoint = `http://127.0.0.1:${port}`;
  const s3 = s3client(endpoint);
  const hl = hlclient(endpoint);

  // ---- data: 6 valid resources, 3 invalid ones ----
  const valid = [];
  for (let i = 1; i <= 6; i++)
    valid.push(JSON.stringify({ resourceType: "Patient", id: `p${i}`, gender: "female",
                                birthDate: "1970-01-0" + i, name: [{ family: `Doe${i}` }] }));
  const invalid = [
    '{"resourceType":"Patient","id":"bad1",',                       // not JSON
    '{"resourceType":"NotAResource","id":"x1"}',                      // unknown type
    '{"resourceType":"Patient","id":"bad3","birthDate":"yesterday"}',  // bad date
  ];
  const lines = [valid[0], invalid[0], valid[1], valid[2], invalid[1], valid[3], valid[4], invalid[2], valid[5]];
  const ndjson = lines.join("\n") + "\n";
  const put = await s3.send(new S3.PutObjectCommand({
    Bucket: "fhir-landing", Key: "exports/e1/import/Patient.ndjson", Body: Buffer.from(ndjson),
    ServerSideEncryption: "aws:kms", SSEKMSKeyId: KMS, ContentType: "application/fhir+ndjson",
  }));
  assert.equal(put.ETag, `"${createHash("md5").update(ndjson).digest("hex")}"`);
  assert.equal(put.ServerSideEncryption, "aws:kms");
  assert.equal(put.SSEKMSKeyId, KMS);
  step("PutObject with SSE-KMS: ETag is the MD5, SSE echoed");

  const head = await s3.send(new S3.HeadObjectCommand({ Bucket: "fhir-landing", Key: "exports/e1/import/Patient.ndjson" }));
  assert.equal(head.ContentLength, Buffer.byteLength(ndjson));
  const got = await s3.send(new S3.GetObjectCommand({ Bucket: "fhir-landing", Key: "exports/e1/import/Patient.ndjson", Range: "bytes=0-9" }));
  assert.equal(await got.Body.transformToString(), ndjson.slice(0, 10));
  assert.equal(got.ContentRange, `bytes 0-9/${Buffer.byteLength(ndjson)}`);
  step("HeadObject and ranged GetObject");

  // A stream body: the SDK sends it aws-chunked (STREAMING-UNSIGNED-PAYLOAD-TRAILER) with the
  // CRC32 in a trailer; the emulator decodes it and checks the trailing checksum.
  const streamed = Buffer.alloc(200000, "z");
  const sput = await s3.send(new S3.PutObjectCommand({
    Bucket: "fhir-landing", Key: "streamed.bin", Body: Readable.from([streamed.subarray(0, 70000), streamed.subarray(70000)]),
    ContentLength: streamed.length,
  }));
  assert.equal(sput.ETag, `"${createHash("md5").update(streamed).digest("hex")}"`);
  assert.ok(sput.ChecksumCRC32, "trailing x-amz-checksum-crc32 echoed");
  const sgot = Buffer.from(await (await s3.send(new S3.GetObjectCommand({ Bucket: "fhir-landing", Key: "streamed.bin" }))).Body.transformToByteArray());
  assert.ok(sgot.equals(streamed));
  step("PutObject with a stream body (aws-chunked, trailing CRC32)");

  // ---- HealthLake ----
  const ds = await hl.send(new HL.DescribeFHIRDatastoreCommand({ DatastoreId: DS }));
  assert.equal(ds.DatastoreProperties.DatastoreStatus, "ACTIVE");
  assert.equal(ds.DatastoreProperties.DatastoreTypeVersion, "R4");
  step("DescribeFHIRDatastore: ACTIVE R4");

  const startInput = {
    JobName: "export-e1", DatastoreId: DS, DataAccessRoleArn: ROLE, ClientToken: "export-e1-token-0001",
    InputDataConfig: { S3Uri: "s3://fhir-landing/exports/e1/import/" },
    JobOutputDataConfig: { S3Configuration: { S3Uri: "s3://fhir-results/imports/", KmsKeyId: KMS } },
    ValidationLevel: "structure-only",
  };
  const a = await hl.send(new HL.StartFHIRImportJobCommand(startInput));
  const b = await hl.send(new HL.StartFHIRImportJobCommand(startInput));
  assert.ok(/^[0-9a-f]{32}$/.test(a.JobId), a.JobId);
  assert.equal(b.JobId, a.JobId, "same ClientToken must return the same JobId");
  assert.equal(a.DatastoreId, DS);
  step("StartFHIRImportJob twice with one ClientToken: one JobId");

  await expectError(hl.send(new HL.StartFHIRImportJobCommand({ ...startInput, ClientToken: "bad token!" })), "ValidationException");
  await expectError(hl.send(new HL.DescribeFHIRImportJobCommand({ DatastoreId: DS, JobId: "ffffffffffffffffffffffffffffffff" })), "ResourceNotFoundException");
  step("ValidationException and ResourceNotFoundException");

  let job;
  const seen = new Set();
  for (let i = 0; i < 400; i++) {
    job = (await hl.send(new HL.DescribeFHIRImportJobCommand({ DatastoreId: DS, JobId: a.JobId }))).ImportJobProperties;
    seen.add(job.JobStatus);
    if (["COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED"].includes(job.JobStatus)) break;
    await new Promise((r) => setTimeout(r, 25));
  }
  assert.equal(job.JobStatus, "COMPLETED_WITH_ERRORS", job.Message);
  assert.ok(job.SubmitTime instanceof Date && job.EndTime instanceof Date);
  assert.equal(job.ValidationLevel, "structure-only");
  const rep = job.JobProgressReport;
  assert.equal(rep.TotalNumberOfScannedFiles, 1);
  assert.equal(rep.TotalNumberOfResourcesScanned, lines.length);
  assert.equal(rep.TotalNumberOfResourcesImported, valid.length);
  assert.equal(rep.TotalNumberOfResourcesWithCustomerError, invalid.length);
  step(`DescribeFHIRImportJob: ${[...seen].join(" -> ")}, counts ${rep.TotalNumberOfResourcesImported}/${rep.TotalNumberOfResourcesScanned}`);

  const list = await hl.send(new HL.ListFHIRImportJobsCommand({ DatastoreId: DS, JobName: "export-e1" }));
  assert.equal(list.ImportJobPropertiesList.length, 1);
  assert.equal(list.ImportJobPropertiesList[0].JobId, a.JobId);
  step("ListFHIRImportJobs by JobName");

  // ---- outputs through S3 ----
  const base = `imports/${DS}-FHIR_IMPORT-${a.JobId}/`;
  const man = JSON.parse(await (await s3.send(new S3.GetObjectCommand({ Bucket: "fhir-results", Key: base + "manifest.json" }))).Body.transformToString());
  assert.equal(man.inputDataConfig.s3Uri, "s3://fhir-landing/exports/e1/import/");
  assert.equal(man.outputDataConfig.encryptionKeyID, KMS);
  assert.equal(man.numberOfScannedFiles, 1);
  assert.equal(man.numberOfResourcesScanned, lines.length);
  assert.equal(man.numberOfResourcesImportedSuccessfully, valid.length);
  assert.equal(man.numberOfResourcesWithCustomerError, invalid.length);
  assert.equal(man.failureOutput.failureOutputS3Uri, `s3://fhir-results/${base}FAILURE/`);
  const failures = await s3.send(new S3.ListObjectsV2Command({ Bucket: "fhir-results", Prefix: base + "FAILURE/" }));
  assert.equal(failures.KeyCount, 1);
  let outcomes = [];
  for (const o of failures.Contents) {
    const text = await (await s3.send(new S3.GetObjectCommand({ Bucket: "fhir-results", Key: o.Key }))).Body.transformToString();
    outcomes = outcomes.concat(text.trim().split("\n").map((l) => JSON.parse(l)));
  }
  assert.equal(outcomes.length, invalid.length);
  for (const oo of outcomes) assert.equal(oo.resourceType, "OperationOutcome");
  step("manifest.json and FAILURE/ read through the S3 client");

  // ListObjectsV2 pagination with a delimiter.
  const p1 = await s3.send(new S3.ListObjectsV2Command({ Bucket: "fhir-results", Prefix: base, Delimiter: "/", MaxKeys: 1 }));
  assert.equal(p1.IsTruncated, true);
  const p2 = await s3.send(new S3.ListObjectsV2Command({ Bucket: "fhir-results", Prefix: base, Delimiter: "/", MaxKeys: 10, ContinuationToken: p1.NextContinuationToken }));
  const all = [...(p1.CommonPrefixes ?? []).map((c) => c.Prefix), ...(p1.Contents ?? []).map((c) => c.Key),
               ...(p2.CommonPrefixes ?? []).map((c) => c.Prefix), ...(p2.Contents ?? []).map((c) => c.Key)].sort();
  assert.deepEqual(all, [base + "FAILURE/", base + "SUCCESS/", base + "manifest.json"]);
  step("ListObjectsV2 continuation with delimiter");

  // ---- multipart: ListParts + Abort ----
  const partA = Buffer.alloc(5 * 1024 * 1024, "a");
  const partB = Buffer.from("tail of the object\n");
  const up = await s3.send(new S3.CreateMultipartUploadCommand({ Bucket: "fhir-landing", Key: "mp/abort.bin", ChecksumAlgorithm: "CRC32C" }));
  const u1 = await s3.send(new S3.UploadPartCommand({ Bucket: "fhir-landing", Key: "mp/abort.bin", UploadId: up.UploadId, PartNumber: 1, Body: partA, ChecksumAlgorithm: "CRC32C" }));
  const u2 = await s3.send(new S3.UploadPartCommand({ Bucket: "fhir-landing", Key: "mp/abort.bin", UploadId: up.UploadId, PartNumber: 2, Body: partB, ChecksumAlgorithm: "CRC32C" }));
  assert.equal(u1.ETag, `"${createHash("md5").update(partA).digest("hex")}"`);
  assert.ok(u1.ChecksumCRC32C, "UploadPart echoes x-amz-checksum-crc32c");
  const lp1 = await s3.send(new S3.ListPartsCommand({ Bucket: "fhir-landing", Key: "mp/abort.bin", UploadId: up.UploadId, MaxParts: 1 }));
  assert.equal(lp1.IsTruncated, true);
  assert.equal(lp1.Parts.length, 1);
  assert.equal(lp1.Parts[0].PartNumber, 1);
  assert.equal(lp1.Parts[0].Size, partA.length);
  assert.equal(lp1.Parts[0].ChecksumCRC32C, u1.ChecksumCRC32C);
  const lp2 = await s3.send(new S3.ListPartsCommand({ Bucket: "fhir-landing", Key: "mp/abort.bin", UploadId: up.UploadId, PartNumberMarker: lp1.NextPartNumberMarker }));
  assert.equal(lp2.IsTruncated, false);
  assert.deepEqual(lp2.Parts.map((p) => p.PartNumber), [2]);
  assert.equal(lp2.Parts[0].ETag, u2.ETag);
  const ups = await s3.send(new S3.ListMultipartUploadsCommand({ Bucket: "fhir-landing" }));
  assert.ok(ups.Uploads.some((u) => u.UploadId === up.UploadId));
  await s3.send(new S3.AbortMultipartUploadCommand({ Bucket: "fhir-landing", Key: "mp/abort.bin", UploadId: up.UploadId }));
  await expectError(s3.send(new S3.ListPartsCommand({ Bucket: "fhir-landing", Key: "mp/abort.bin", UploadId: up.UploadId })), "NoSuchUpload");
  step("multipart: UploadPart, ListParts (paginated), ListMultipartUploads, Abort, NoSuchUpload");

  // ---- multipart to completion ----
  const up2 = await s3.send(new S3.CreateMultipartUploadCommand({ Bucket: "fhir-landing", Key: "mp/done.bin", ChecksumAlgorithm: "CRC32C" }));
  const q1 = await s3.send(new S3.UploadPartCommand({ Bucket: "fhir-landing", Key: "mp/done.bin", UploadId: up2.UploadId, PartNumber: 1, Body: partA, ChecksumAlgorithm: "CRC32C" }));
  const q2 = await s3.send(new S3.UploadPartCommand({ Bucket: "fhir-landing", Key: "mp/done.bin", UploadId: up2.UploadId, PartNumber: 2, Body: partB, ChecksumAlgorithm: "CRC32C" }));
  await expectError(s3.send(new S3.CompleteMultipartUploadCommand({ Bucket: "fhir-landing", Key: "mp/done.bin", UploadId: up2.UploadId,
    MultipartUpload: { Parts: [{ PartNumber: 2, ETag: q2.ETag, ChecksumCRC32C: q2.ChecksumCRC32C }, { PartNumber: 1, ETag: q1.ETag, ChecksumCRC32C: q1.ChecksumCRC32C }] } })), "InvalidPartOrder");
  const done = await s3.send(new S3.CompleteMultipartUploadCommand({ Bucket: "fhir-landing", Key: "mp/done.bin", UploadId: up2.UploadId,
    MultipartUpload: { Parts: [{ PartNumber: 1, ETag: q1.ETag, ChecksumCRC32C: q1.ChecksumCRC32C }, { PartNumber: 2, ETag: q2.ETag, ChecksumCRC32C: q2.ChecksumCRC32C }] } }));
  const md5s = Buffer.concat([createHash("md5").update(partA).digest(), createHash("md5").update(partB).digest()]);
  assert.equal(done.ETag, `"${createHash("md5").update(md5s).digest("hex")}-2"`);
  assert.ok(/-2$/.test(done.ChecksumCRC32C), done.ChecksumCRC32C);
  const whole = Buffer.from(await (await s3.send(new S3.GetObjectCommand({ Bucket: "fhir-landing", Key: "mp/done.bin" }))).Body.transformToByteArray());
  assert.ok(whole.equals(Buffer.concat([partA, partB])));
  step("multipart complete: InvalidPartOrder, ETag md5-of-md5s-2, body intact");

  // ---- duplicate import is visible ----
  const c = await hl.send(new HL.StartFHIRImportJobCommand({ ...startInput, ClientToken: "export-e1-token-0002" }));
  assert.notEqual(c.JobId, a.JobId);
  for (let i = 0; i < 400; i++) {
    job = (await hl.send(new HL.DescribeFHIRImportJobCommand({ DatastoreId: DS, JobId: c.JobId }))).ImportJobProperties;
    if (["COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED"].includes(job.JobStatus)) break;
    await new Promise((r) => setTimeout(r, 25));
  }
  assert.equal(job.JobStatus, "COMPLETED_WITH_ERRORS");
  const counts = await (await fetch(`${endpoint}/_healthlake-local/datastores/${DS}/resources`)).json();
  assert.equal(counts["Patient/p1"], 2, JSON.stringify(counts));
  assert.equal(counts["Patient/bad3"], undefined);
  step("second import with a new token: duplicate visible (Patient/p1 imported twice)");

  // ---- wrong secret ----
  await expectError(s3client(endpoint, "wrong-secret").send(new S3.PutObjectCommand({ Bucket: "fhir-landing", Key: "x", Body: "x" })), "SignatureDoesNotMatch");
  await expectError(hlclient(endpoint, "wrong-secret").send(new HL.DescribeFHIRDatastoreCommand({ DatastoreId: DS })), "InvalidSignatureException");
  step("wrong secret rejected: SignatureDoesNotMatch (S3), InvalidSignatureException (HealthLake)");

  // The request log names what happened.
  const log = readFileSync(join(dir, "data", "requests.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
  const starts = log.filter((l) => l.operation === "StartFHIRImportJob" && l.status === 200);
  assert.equal(starts.filter((l) => l.client_token === "export-e1-token-0001" && l.job_id === a.JobId).length, 2);
  const streamedPut = log.find((l) => l.operation === "PutObject" && l.key === "streamed.bin");
  assert.ok(streamedPut.payload.startsWith("STREAMING-"), `stream body sent as ${streamedPut.payload}`);
  step(`request log records client tokens and job ids (stream body sent as ${streamedPut.payload})`);
}

let code = 0;
try {
  await main();
  console.log(`all ${steps.length} checks passed`);
} catch (e) {
  console.error("FAILED:", e);
  code = 1;
} finally {
  child.kill("SIGTERM");
  await new Promise((r) => (exited ? r() : child.on("exit", r)));
  if (code === 0) rmSync(dir, { recursive: true, force: true });
  else console.error("emulator data kept in", dir);
}
process.exit(code);
