#!/usr/bin/python3
"""healthlake-local's STS AssumeRole against botocore (Debian python3-botocore 1.29).

    /usr/bin/python3 botocore_sts.py <path to healthlake-local>

Starts the emulator (--role R, --session-lifetime 3s) on 127.0.0.1:<free port> and checks, with
botocore's own STS client (Query protocol, SigV4 service sts) and its own XML parser:
  AssumeRole answers credentials botocore parses (ASIA key id, token, tz-aware Expiration);
  an S3 client with those credentials writes and reads an object; a role the emulator does not
  know -> AccessDenied; a wrong secret -> SignatureDoesNotMatch; botocore's own AssumeRole
  credential provider (a config-file profile with role_arn + source_profile) gets credentials
  from the emulator; and once Expiration passes, S3 refuses the role's credentials (ExpiredToken).
Any mismatch raises, so the process exits non-zero and CTest fails.
"""
import datetime
import os
import shutil
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../support"))
import harness  # noqa: E402  (tests/support: the emulator)

import botocore.session
from botocore.config import Config
from botocore.exceptions import ClientError

AK = "AKIAHLLOCALBOTOSTS01"
SK = "botocore-sts-secret-00000000000000000000"
REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/FhirEdgeGateway"
NO_RETRY = Config(retries={"max_attempts": 1})


def client(service, endpoint, ak=AK, sk=SK, token=None, session=None, config=NO_RETRY):
    session = session or botocore.session.get_session()
    return session.create_client(
        service, region_name=REGION, endpoint_url=endpoint, aws_access_key_id=ak,
        aws_secret_access_key=sk, aws_session_token=token, config=config)


def s3_client(endpoint, creds):
    return client("s3", endpoint, creds["AccessKeyId"], creds["SecretAccessKey"],
                  creds["SessionToken"],
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
    tmp = tempfile.mkdtemp(prefix="hll-botocore-sts-")
    procs = []
    ok = False
    checks = []
    try:
        port = harness.start_emulator(binary, tmp, procs, AK, SK, buckets=("landing",),
                                      args=["--role", ROLE, "--session-lifetime", "3s"])
        endpoint = "http://127.0.0.1:%d" % port
        sts = client("sts", endpoint)

        before = datetime.datetime.now(datetime.timezone.utc)
        out = sts.assume_role(RoleArn=ROLE, RoleSessionName="botocore-test", DurationSeconds=900)
        creds = out["Credentials"]
        assert creds["AccessKeyId"].startswith("ASIA"), creds["AccessKeyId"]
        assert creds["SessionToken"] and creds["SecretAccessKey"] != SK
        exp = creds["Expiration"]
        assert exp.tzinfo is not None, exp
        assert before < exp <= before + datetime.timedelta(seconds=10), (before, exp)
        assert out["AssumedRoleUser"]["Arn"] == \
            "arn:aws:sts::123456789012:assumed-role/FhirEdgeGateway/botocore-test", out
        checks.append("AssumeRole parsed by botocore (ASIA key, token, tz-aware Expiration)")

        s3 = s3_client(endpoint, creds)
        s3.put_object(Bucket="landing", Key="role/one.txt", Body=b"hello")
        assert s3.get_object(Bucket="landing", Key="role/one.txt")["Body"].read() == b"hello"
        checks.append("S3 put/get with the role's temporary credentials")

        e = expect_error("AccessDenied", sts.assume_role,
                         RoleArn="arn:aws:iam::123456789012:role/Unknown", RoleSessionName="x1")
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        checks.append("unknown role -> AccessDenied (403)")
        expect_error("SignatureDoesNotMatch", client("sts", endpoint, sk="wrong-secret").assume_role,
                     RoleArn=ROLE, RoleSessionName="x2")
        checks.append("wrong secret -> SignatureDoesNotMatch")
        lax = client("sts", endpoint, config=Config(retries={"max_attempts": 1},
                                                    parameter_validation=False))
        expect_error("ValidationError", lax.assume_role, RoleArn=ROLE, RoleSessionName="x3",
                     DurationSeconds=100)
        checks.append("DurationSeconds 100 -> ValidationError")

        # botocore's own AssumeRoleProvider: a profile with role_arn + source_profile. (1.29 has
        # no AWS_ENDPOINT_URL_STS: point its STS client at the emulator through the session's
        # client creator.)
        cfg = os.path.join(tmp, "config")
        with open(cfg, "w") as f:
            f.write("[profile gw]\naws_access_key_id = %s\naws_secret_access_key = %s\n"
                    "[profile upload]\nrole_arn = %s\nsource_profile = gw\n" % (AK, SK, ROLE))
        session = botocore.session.Session(profile="upload")
        session.set_config_variable("config_file", cfg)
        session.set_config_variable("credentials_file", os.path.join(tmp, "none"))
        session.set_config_variable("region", REGION)
        real_create = session.create_client

        def create_client(service, *args, **kwargs):
            if service == "sts":
                kwargs["endpoint_url"] = endpoint
            return real_create(service, *args, **kwargs)
        session.create_client = create_client
        provider = session.get_component("credential_provider").get_provider("assume-role")
        provider._client_creator = create_client
        frozen = session.get_credentials().get_frozen_credentials()
        assert frozen.access_key.startswith("ASIA"), frozen.access_key
        checks.append("botocore's AssumeRole profile provider got credentials from the emulator")

        # Expiry: the role's credentials stop working once Expiration passes.
        deadline = time.monotonic() + 30
        while datetime.datetime.now(datetime.timezone.utc) <= exp and time.monotonic() < deadline:
            time.sleep(0.2)
        expect_error("ExpiredToken", s3.get_object, Bucket="landing", Key="role/one.txt")
        checks.append("S3 refuses the role's credentials after Expiration (ExpiredToken)")

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
        print("usage: botocore_sts.py <healthlake-local binary>", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
