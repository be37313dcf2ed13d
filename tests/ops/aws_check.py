"""The AWS JSON under deploy/ against the AWS API models, offline.

usage: aws_check.py

botocore (the library under the AWS CLI) validates parameters against the
service model before it sends anything; this runs that same validation on
  - deploy/cloudfront/cache-policy.json          (CreateCachePolicy)
  - deploy/cloudfront/origin-request-policy.json (CreateOriginRequestPolicy)
  - deploy/cloudfront/function-config.json + the function (CreateFunction)
  - deploy/iam/pixmirror-policy.json             (CreatePolicy: JSON, then
    the least-privilege shape the README promises)
and the limits the model does not express (Quantity = len(Items)).
"""
import json
import sys

import botocore.session
from botocore.validate import ParamValidator

failures = []


def check(ok, what):
    if not ok:
        failures.append(what)
        print(f"FAIL {what}")


def enums(value, shape, where):
    """botocore's validator checks types, not enum values: the API would."""
    if shape.type_name == "structure" and isinstance(value, dict):
        for k, v in value.items():
            if k in shape.members:
                enums(v, shape.members[k], f"{where}.{k}")
    elif shape.type_name == "list" and isinstance(value, list):
        for i, v in enumerate(value):
            enums(v, shape.member, f"{where}[{i}]")
    elif shape.type_name == "string" and shape.enum:
        check(value in shape.enum, f"{where}: {value!r} is not one of {shape.enum}")


def validate(service, operation, params):
    model = botocore.session.get_session().get_service_model(service)
    shape = model.operation_model(operation).input_shape
    report = ParamValidator().validate(params, shape)
    check(not report.has_errors(), f"{service} {operation}: {report.generate_report()}")
    enums(params, shape, operation)


def quantities(node, where):
    if isinstance(node, dict):
        if "Quantity" in node:
            check(node["Quantity"] == len(node.get("Items", [])), f"{where}: Quantity matches Items")
        for k, v in node.items():
            quantities(v, f"{where}.{k}")


def main():
    cache = json.load(open("deploy/cloudfront/cache-policy.json"))
    validate("cloudfront", "CreateCachePolicy", {"CachePolicyConfig": cache})
    quantities(cache, "cache-policy")
    key = cache["ParametersInCacheKeyAndForwardedToOrigin"]
    check(key["HeadersConfig"]["Headers"]["Items"]
          == ["Accept", "Sec-CH-Width", "Width", "Sec-CH-Viewport-Width", "Sec-CH-DPR", "DPR"],
          "the key's headers: Accept and the client hints, each normalised by the function")
    check({"x-oss-process", "x-bce-process"} <= set(key["QueryStringsConfig"]["QueryStrings"]["Items"]),
          "the process parameters are in the cache key")
    origin = json.load(open("deploy/cloudfront/origin-request-policy.json"))
    validate("cloudfront", "CreateOriginRequestPolicy", {"OriginRequestPolicyConfig": origin})
    quantities(origin, "origin-request-policy")
    fconf = json.load(open("deploy/cloudfront/function-config.json"))
    code = open("deploy/cloudfront/accept-normalize.js", "rb").read()
    validate("cloudfront", "CreateFunction",
             {"Name": "pixmirror-accept", "FunctionConfig": fconf, "FunctionCode": code})

    policy_text = open("deploy/iam/pixmirror-policy.json").read()
    validate("iam", "CreatePolicy", {"PolicyName": "pixmirror", "PolicyDocument": policy_text})
    policy = json.loads(policy_text)
    actions = {}
    for st in policy["Statement"]:
        check(st["Effect"] == "Allow", "only Allow statements")
        for a in st["Action"]:
            actions[a] = st["Resource"]
    check(set(actions) == {"s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket"},
          f"exactly Get/Put/DeleteObject and ListBucket ({sorted(actions)})")
    check(all(r.endswith("/*") for a, r in actions.items() if a != "s3:ListBucket"),
          "object actions on the bucket's objects only")
    check(not actions.get("s3:ListBucket", "/*").endswith("*"), "ListBucket on the bucket itself")


if __name__ == "__main__":
    main()
    print(f"aws_check: {len(failures)} failure(s)")
    sys.exit(min(len(failures), 100))
