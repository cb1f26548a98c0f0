// Peer for bench/aws/run.sh: the same multipart upload with the AWS SDK for JavaScript v3
// (@aws-sdk/client-s3), CRC32C per part, same part size and concurrency.
// node sdk_upload_bench.js ENDPOINT ACCESS_KEY SECRET BUCKET SIZE_MIB PART_MIB CONCURRENCY
const path = require("path");
const { S3Client, CreateMultipartUploadCommand, UploadPartCommand, CompleteMultipartUploadCommand } =
  require(path.join(__dirname, "../../tests/node/node_modules/@aws-sdk/client-s3"));
const crypto = require("crypto");

async function main() {
  const [endpoint, ak, sk, bucket, sizeMib, partMib, conc] = process.argv.slice(2);
  const size = Number(sizeMib) * 1048576, part = Number(partMib) * 1048576;
  const client = new S3Client({ endpoint, region: "us-east-1", forcePathStyle: true,
                                credentials: { accessKeyId: ak, secretAccessKey: sk } });
  const block = crypto.randomBytes(part);
  const Key = "bench/sdk-upload.ndjson";
  const t0 = process.hrtime.bigint();
  const { UploadId } = await client.send(new CreateMultipartUploadCommand(
      { Bucket: bucket, Key, ChecksumAlgorithm: "CRC32C" }));
  const n = Math.ceil(size / part);
  const parts = new Array(n);
  let next = 1;
  async function worker() {
    while (next <= n) {
      const num = next++;
      const len = Math.min(part, size - (num - 1) * part);
      const r = await client.send(new UploadPartCommand({ Bucket: bucket, Key, UploadId,
          PartNumber: num, Body: block.subarray(0, len), ChecksumAlgorithm: "CRC32C" }));
      parts[num - 1] = { PartNumber: num, ETag: r.ETag, ChecksumCRC32C: r.ChecksumCRC32C };
    }
  }
  await Promise.all(Array.from({ length: Number(conc) }, worker));
  await client.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key, UploadId,
      MultipartUpload: { Parts: parts } }));
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(JSON.stringify({ bytes: size, seconds: secs,
                               peak_rss_kb: Math.round(process.resourceUsage().maxRSS) }));
}
main().catch((e) => { console.error("sdk upload failed:", e.message); process.exit(1); });
