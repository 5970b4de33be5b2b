"""Delete dumps older than KEEP_DAYS under PREFIX in object storage (uses the aws CLI)."""

import datetime as dt
import json
import os
import subprocess

prefix = os.environ["PREFIX"]
keep = dt.timedelta(days=int(os.environ["KEEP_DAYS"]))
bucket, _, key_prefix = prefix.removeprefix("s3://").partition("/")
listing = subprocess.run(
    [
        "aws",
        "s3api",
        "list-objects-v2",
        "--bucket",
        bucket,
        "--prefix",
        key_prefix,
        "--output",
        "json",
    ],
    check=True,
    capture_output=True,
    text=True,
)
now = dt.datetime.now(dt.UTC)
deleted = 0
for item in json.loads(listing.stdout or "{}").get("Contents", []):
    modified = dt.datetime.fromisoformat(item["LastModified"].replace("Z", "+00:00"))
    if now - modified > keep:
        subprocess.run(["aws", "s3", "rm", f"s3://{bucket}/{item['Key']}"], check=True)
        print(f"deleted {item['Key']}")
        deleted += 1
with open(os.environ["OPSFLOW_OUTPUT"], "w") as out:
    json.dump({"deleted": deleted}, out)
