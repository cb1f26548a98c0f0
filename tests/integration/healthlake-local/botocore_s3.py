#!/usr/bin/python3
"""healthlake-local against botocore (Debian python3-botocore 1.29): S3 put/get/multipart.

    /usr/bin/python3 botocore_s3.py <path to healthlake-local>

Starts the emulator on 127.0.0.1:<free port> in a temp dir and checks, with botocore's own
signing (payload-signed SigV4, Content-MD5 where botocore adds it):
  CreateBucket, PutObject (Content-MD5 right and wrong), GetObject (+Range), HeadObject,
  ListObjectsV2 pagination, multipart upload to completion (ETag md5-of-md5s-N), ListParts,
  EntityTooSmall, InvalidPart, If-None-Match: * -> 412 on Complete, NoSuchUpload after Complete,
  and a wrong secret -> SignatureDoesNotMatch.
Any mismatch raises, so the process exits non-zero and CTest fails.
"""
import base64
import hashlib
import os
import shutil
import signal
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../support"))
import harness  # noqa: E402  (tests/support: the emulator)

import botocore.session
from botocore.config import Config
from botocore.exceptions import ClientError

AK = "AKIAHLLOCALBOTOCORE1"
SK = "botocore-test-secret-000000000000000000"
REGION = "us-east-1"


def client(endpoint, secret=SK):
    session = botocore.session.get_session()
    return session.create_client(
        "s3", region_name=REGION, endpoint_url=endpoint,
        aws_access_key_id=AK, aws_secret_access_key=secret,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1},
                      signature_version="s3v4"))


def expect_error(code, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except ClientError as e:
        got = e.response["Error"]["Code"]
        assert got == code, "expected %s, got %s: %s" % (code, got, e)
        return e
    raise AssertionError("expected %s, but the call succeeded" % code)


def main(binary):
    tmp = tempfile.mkdtemp(prefix="hll-botocore-")
    procs = []
    ok = False
    try:
        # No bucket at start: the script creates its own (CreateBucket is one of the checks).
        port = harness.start_emulator(binary, tmp, procs, AK, SK, buckets=())
        endpoint = "http://127.0.0.1:%d" % port
        s3 = client(endpoint)
        checks = []

        s3.create_bucket(Bucket="landing")
        expect_error("InvalidBucketName", s3.create_bucket, Bucket="Bad_Bucket")
        checks.append("CreateBucket, InvalidBucketName")

        body = b'{"resourceType":"Patient","id":"p1"}\n' * 100
        md5 = hashlib.md5(body)
        r = s3.put_object(Bucket="landing", Key="a/one.ndjson", Body=body,
                          ContentMD5=base64.b64encode(md5.digest()).decode())
        assert r["ETag"] == '"%s"' % md5.hexdigest(), r["ETag"]
        expect_error("BadDigest", s3.put_object, Bucket="landing", Key="a/bad", Body=body,
                     ContentMD5=base64.b64encode(hashlib.md5(b"other").digest()).decode())
        got = s3.get_object(Bucket="landing", Key="a/one.ndjson")["Body"].read()
        assert got == body
        part = s3.get_object(Bucket="landing", Key="a/one.ndjson", Range="bytes=-5")
        assert part["Body"].read() == body[-5:]
        assert part["ContentRange"] == "bytes %d-%d/%d" % (len(body) - 5, len(body) - 1, len(body))
        h = s3.head_object(Bucket="landing", Key="a/one.ndjson")
        assert h["ContentLength"] == len(body)
        expect_error("404", s3.head_object, Bucket="landing", Key="a/missing")
        expect_error("NoSuchKey", s3.get_object, Bucket="landing", Key="a/missing")
        checks.append("PutObject (Content-MD5 ok and BadDigest), GetObject (+suffix Range), HeadObject")

        for i in range(5):
            s3.put_object(Bucket="landing", Key="list/k%d" % i, Body=b"x")
        keys, token = [], None
        while True:
            kw = {"Bucket": "landing", "Prefix": "list/", "MaxKeys": 2}
            if token:
                kw["ContinuationToken"] = token
            page = s3.list_objects_v2(**kw)
            keys += [c["Key"] for c in page.get("Contents", [])]
            if not page["IsTruncated"]:
                break
            token = page["NextContinuationToken"]
        assert keys == ["list/k%d" % i for i in range(5)], keys
        checks.append("ListObjectsV2 pagination (5 keys, pages of 2)")

        # Multipart to completion.
        p1 = os.urandom(5 * 1024 * 1024)
        p2 = os.urandom(1000)
        up = s3.create_multipart_upload(Bucket="landing", Key="mp/big.bin")["UploadId"]
        e1 = s3.upload_part(Bucket="landing", Key="mp/big.bin", UploadId=up, PartNumber=1, Body=p1)["ETag"]
        e2 = s3.upload_part(Bucket="landing", Key="mp/big.bin", UploadId=up, PartNumber=2, Body=p2)["ETag"]
        parts = s3.list_parts(Bucket="landing", Key="mp/big.bin", UploadId=up)["Parts"]
        assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in parts] == [(1, e1, len(p1)), (2, e2, len(p2))]
        expect_error("InvalidPart", s3.complete_multipart_upload, Bucket="landing", Key="mp/big.bin",
                     UploadId=up, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1},
                                                             {"PartNumber": 3, "ETag": e2}]})
        done = s3.complete_multipart_upload(Bucket="landing", Key="mp/big.bin", UploadId=up,
                                            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1},
                                                                       {"PartNumber": 2, "ETag": e2}]})
        want = hashlib.md5(hashlib.md5(p1).digest() + hashlib.md5(p2).digest()).hexdigest() + "-2"
        assert done["ETag"] == '"%s"' % want, done["ETag"]
        assert s3.get_object(Bucket="landing", Key="mp/big.bin")["Body"].read() == p1 + p2
        expect_error("NoSuchUpload", s3.list_parts, Bucket="landing", Key="mp/big.bin", UploadId=up)
        checks.append("multipart: UploadPart, ListParts, InvalidPart, Complete (ETag md5-of-md5s-2), NoSuchUpload after")

        # EntityTooSmall: a non-last part under 5 MiB.
        up = s3.create_multipart_upload(Bucket="landing", Key="mp/small.bin")["UploadId"]
        f1 = s3.upload_part(Bucket="landing", Key="mp/small.bin", UploadId=up, PartNumber=1, Body=b"a" * 100)["ETag"]
        f2 = s3.upload_part(Bucket="landing", Key="mp/small.bin", UploadId=up, PartNumber=2, Body=b"b" * 100)["ETag"]
        expect_error("EntityTooSmall", s3.complete_multipart_upload, Bucket="landing", Key="mp/small.bin",
                     UploadId=up, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": f1},
                                                             {"PartNumber": 2, "ETag": f2}]})
        s3.abort_multipart_upload(Bucket="landing", Key="mp/small.bin", UploadId=up)
        checks.append("EntityTooSmall for a 100-byte non-last part")

        # If-None-Match: * on Complete when the key exists -> 412 PreconditionFailed.
        def add_inm(request, **kwargs):
            request.headers["If-None-Match"] = "*"
        up = s3.create_multipart_upload(Bucket="landing", Key="mp/big.bin")["UploadId"]
        g1 = s3.upload_part(Bucket="landing", Key="mp/big.bin", UploadId=up, PartNumber=1, Body=p2)["ETag"]
        s3.meta.events.register("before-sign.s3.CompleteMultipartUpload", add_inm)
        e = expect_error("PreconditionFailed", s3.complete_multipart_upload, Bucket="landing", Key="mp/big.bin",
                         UploadId=up, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": g1}]})
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 412
        s3.meta.events.unregister("before-sign.s3.CompleteMultipartUpload", add_inm)
        assert s3.get_object(Bucket="landing", Key="mp/big.bin")["Body"].read() == p1 + p2
        checks.append("If-None-Match: * on Complete over an existing key -> 412, object unchanged")

        expect_error("SignatureDoesNotMatch", client(endpoint, "wrong-secret").get_object,
                     Bucket="landing", Key="a/one.ndjson")
        checks.append("wrong secret -> SignatureDoesNotMatch")
        for c in checks:
            print("ok -", c)
        print("all %d checks passed" % len(checks))
        ok = True
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
        if ok:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print("emulator data kept in", tmp, file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) != 2 or not os.path.exists(sys.argv[1]):
        print("usage: botocore_s3.py <healthlake-local binary>", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
