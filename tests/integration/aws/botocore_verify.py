#!/usr/bin/python3
"""Recompute the SigV4 signature of every captured request with botocore and compare.

Input: a JSON-lines file, one request per line:
  {"method", "target" (path?query as received), "headers": [[name, value], ...],
   "body": str (small bodies) | null, "body_sha256": hex, "secret": str, "token": str|""}
The service and region come from the Authorization header's credential scope. Only the headers
listed in SignedHeaders are given to botocore (it signs every header it is given), and
x-amz-date is fed as the signing timestamp. S3 requests use S3SigV4Auth (no path normalisation,
x-amz-content-sha256 as sent), everything else SigV4Auth.

Also checks: x-amz-content-sha256, when not UNSIGNED-PAYLOAD, equals the received body's hash;
host, x-amz-date (and x-amz-content-sha256 for S3, x-amz-security-token when sent) are signed.
Prints one line per failure and a summary; exit status 1 when anything failed.
"""
import json
import re
import sys

from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

AUTH_RE = re.compile(
    r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
    r"SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$")


def verify(rec):
    headers = {k.lower(): v for k, v in rec["headers"]}
    m = AUTH_RE.match(headers.get("authorization", ""))
    if not m:
        return "unparsable Authorization header"
    akid, date8, region, service, signed, signature = m.groups()
    signed_list = signed.split(";")
    required = ["host", "x-amz-date"]
    if service == "s3":
        required.append("x-amz-content-sha256")
    if "x-amz-security-token" in headers:
        required.append("x-amz-security-token")
    for h in required:
        if h not in signed_list:
            return f"{h} is not signed"
    if headers["x-amz-date"][:8] != date8:
        return "credential scope date differs from x-amz-date"
    sha = headers.get("x-amz-content-sha256")
    if sha is not None and sha != "UNSIGNED-PAYLOAD" and sha != rec["body_sha256"]:
        return "x-amz-content-sha256 does not match the body"
    body = rec.get("body")
    if service != "s3" and body is None:
        return "body not captured"
    to_sign = [(k, v) for k, v in rec["headers"] if k.lower() in signed_list]
    url = "http://" + headers["host"] + rec["target"]
    req = AWSRequest(method=rec["method"], url=url, headers=dict(to_sign),
                     data=(body or "").encode("utf-8"))
    req.context["timestamp"] = headers["x-amz-date"]
    creds = Credentials(akid, rec["secret"], rec.get("token") or None)
    auth = (S3SigV4Auth if service == "s3" else SigV4Auth)(creds, service, region)
    canonical = auth.canonical_request(req)
    sts = auth.string_to_sign(req, canonical)
    expected = auth.signature(sts, req)
    if auth.signed_headers(auth.headers_to_sign(req)) != signed:
        return f"SignedHeaders differ: botocore {auth.signed_headers(auth.headers_to_sign(req))}"
    if expected != signature:
        return "signature differs from botocore's\n--- canonical request (botocore) ---\n" + canonical
    return None


def main():
    failures = 0
    total = 0
    services = set()
    with open(sys.argv[1], encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            rec = json.loads(line)
            total += 1
            services.add(rec["method"] + " " + rec["target"].split("?")[0][:40])
            why = verify(rec)
            if why:
                failures += 1
                print(f"FAIL {rec['method']} {rec['target']}: {why}")
    print(f"botocore verified {total - failures}/{total} requests")
    return 1 if failures or total == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
