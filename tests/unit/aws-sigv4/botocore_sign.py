#!/usr/bin/python3
"""Signs requests with botocore (Debian python3-botocore), the peer our signer must agree with.

stdin: JSON list of {"method","url","headers":{...},"body","service","region","s3","time",
"access_key","secret_key","token"}; stdout: JSON list of {"authorization","canonical_request",
"string_to_sign","headers"}. The time is fixed by replacing botocore.auth's clock.
"""
import datetime
import json
import sys
import types

import botocore.auth
import botocore.awsrequest
import botocore.credentials

_real = datetime.datetime


def fixed_clock(iso):
    t = _real.strptime(iso, "%Y%m%dT%H%M%SZ")

    class Fixed(_real):
        @classmethod
        def utcnow(cls):
            return t

    mod = types.ModuleType("datetime")
    mod.datetime = Fixed
    mod.timedelta = datetime.timedelta
    return mod


out = []
for case in json.load(sys.stdin):
    botocore.auth.datetime = fixed_clock(case["time"])
    creds = botocore.credentials.Credentials(case["access_key"], case["secret_key"],
                                             case.get("token") or None)
    cls = botocore.auth.S3SigV4Auth if case["s3"] else botocore.auth.SigV4Auth
    signer = cls(creds, case["service"], case["region"])
    req = botocore.awsrequest.AWSRequest(method=case["method"], url=case["url"],
                                         headers=case["headers"], data=case["body"].encode())
    if case["s3"] and case.get("unsigned"):
        # What an SDK client configured with s3={"payload_signing_enabled": False} does.
        req.context["client_config"] = types.SimpleNamespace(s3={"payload_signing_enabled": False})
    prepared_cr = {}
    orig_cr = signer.canonical_request

    def capture(r, _orig=orig_cr):
        prepared_cr["cr"] = _orig(r)
        return prepared_cr["cr"]

    signer.canonical_request = capture
    signer.add_auth(req)
    out.append({"authorization": req.headers["Authorization"],
                "canonical_request": prepared_cr["cr"],
                "headers": {k: v for k, v in req.headers.items()}})
json.dump(out, sys.stdout)
