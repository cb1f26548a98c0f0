// healthlake-local's S3 conditional writes against the official AWS SDK for JavaScript v3
// (@aws-sdk/client-s3 3.1048.0 from tests/node/node_modules): the SDK must raise the error codes
// S3 documents for conditional PutObject and CompleteMultipartUpload (S3 User Guide,
// "How to prevent object overwrites with conditional writes"; PutObject API IfMatch/IfNoneMatch):
//   - IfNoneMatch "*" on an existing key          -> 412 PreconditionFailed
//   - IfMatch with a stale ETag                   -> 412 PreconditionFailed
//   - IfMatch on a key with no object             -> 404 NoSuchKey
//   - a DELETE of the key succeeded while the conditional write was in progress (here: between
//     CreateMultipartUpload and CompleteMultipartUpload) -> 409 ConditionalRequestConflict
//   - the refused writes leave the stored object unchanged.
//
//   node conditional_writes.mjs <path to healthlake-local>
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, existsSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import assert from "node:assert/strict";

const require = createRequire(new URL("../../node/package.json", import.meta.url));
const S3 = require("@aws-sdk/client-s3");

const binary = process.argv[2];
if (!binary || !existsSync(binary)) {
  console.error("usage: node conditional_writes.mjs <healthlake-local binary>");
  process.exit(2);
}
const AK = "AKIAHLLOCALSDKTEST01";
const SK = "sdk-test-secret-key-0000000000000000000";
const REGION = "us-east-1";
const BUCKET = "fhir-landing";

const dir = mkdtempSync(join(tmpdir(), "hll-cond-"));
const portFile = join(dir, "port");
const child = spawn(binary, [
  "--data", join(dir, "data"), "--listen", "127.0.0.1:0", "--port-file", portFile,
  "--access-key", AK, "--secret-key", SK, "--region", REGION, "--bucket", BUCKET,
  "--min-part-size", "1",
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

async function expectError(promise, name, status) {
  try {
    await promise;
  } catch (e) {
    assert.equal(e.name, name, `expected ${name}, got ${e.name}: ${e.message}`);
    assert.equal(e.$metadata.httpStatusCode, status, `${name}: HTTP status`);
    return e;
  }
  throw new Error(`expected ${name}, but the call succeeded`);
}

const steps = [];
function step(s) { steps.push(s); console.log("ok -", s); }

async function main() {
  const port = await waitPort();
  const s3 = new S3.S3Client({
    region: REGION, endpoint: `http://127.0.0.1:${port}`, forcePathStyle: true,
    credentials: { accessKeyId: AK, secretAccessKey: SK }, maxAttempts: 1,
  });
  const put = (Key, Body, extra = {}) =>
    s3.send(new S3.PutObjectCommand({ Bucket: BUCKET, Key, Body, ...extra }));
  const body = async (Key) =>
    (await s3.send(new S3.GetObjectCommand({ Bucket: BUCKET, Key }))).Body.transformToString();
  const key = "exports/fleet/north/lease.json";

  const first = await put(key, '{"holder":"a"}', { IfNoneMatch: "*" });
  await expectError(put(key, '{"holder":"b"}', { IfNoneMatch: "*" }), "PreconditionFailed", 412);
  assert.equal(await body(key), '{"holder":"a"}');
  step("IfNoneMatch '*' creates once; the second create is 412 PreconditionFailed");

  const second = await put(key, '{"holder":"a","epoch":2}', { IfMatch: first.ETag });
  assert.notEqual(second.ETag, first.ETag);
  await expectError(put(key, '{"holder":"c"}', { IfMatch: first.ETag }), "PreconditionFailed", 412);
  assert.equal(await body(key), '{"holder":"a","epoch":2}');
  step("IfMatch with the current ETag swaps; a stale ETag is 412 PreconditionFailed");

  await expectError(put("exports/none.json", "{}", { IfMatch: first.ETag }), "NoSuchKey", 404);
  step("IfMatch on a key with no object is 404 NoSuchKey");

  // Multipart: the same preconditions on CompleteMultipartUpload.
  const mp = async (Key, Body) => {
    const { UploadId } = await s3.send(new S3.CreateMultipartUploadCommand({ Bucket: BUCKET, Key }));
    const part = await s3.send(new S3.UploadPartCommand({ Bucket: BUCKET, Key, UploadId, PartNumber: 1, Body }));
    return { UploadId, parts: [{ PartNumber: 1, ETag: part.ETag }] };
  };
  const complete = (Key, u, extra) => s3.send(new S3.CompleteMultipartUploadCommand({
    Bucket: BUCKET, Key, UploadId: u.UploadId, MultipartUpload: { Parts: u.parts }, ...extra }));
  const u1 = await mp(key, "multipart");
  await expectError(complete(key, u1, { IfNoneMatch: "*" }), "PreconditionFailed", 412);
  await expectError(complete(key, u1, { IfMatch: first.ETag }), "PreconditionFailed", 412);
  const done = await complete(key, u1, { IfMatch: second.ETag });
  assert.equal(await body(key), "multipart");
  step("CompleteMultipartUpload: IfNoneMatch/stale IfMatch 412, current IfMatch completes");

  // A delete that succeeds while a conditional write is in progress: 409.
  const u2 = await mp(key, "racing");
  await s3.send(new S3.DeleteObjectCommand({ Bucket: BUCKET, Key: key }));
  const e = await expectError(complete(key, u2, { IfNoneMatch: "*" }), "ConditionalRequestConflict", 409);
  await expectError(s3.send(new S3.HeadObjectCommand({ Bucket: BUCKET, Key: key })), "NotFound", 404);
  step(`a DELETE during the conditional upload: 409 ConditionalRequestConflict (${e.message.slice(0, 40)}...)`);
  // As S3 advises: start a new upload and it goes through.
  const u3 = await mp(key, "retried");
  await complete(key, u3, { IfNoneMatch: "*" });
  assert.equal(await body(key), "retried");
  step("a new upload after the 409 creates the key");
  assert.ok(done.ETag.endsWith('-1"'), `multipart ETag ${done.ETag}`);
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
