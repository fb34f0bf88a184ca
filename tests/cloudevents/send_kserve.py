"""Posts inference traffic to an AIMS agent's CloudEvents endpoint with the official
CloudEvents Python SDK, as a KServe InferenceService serving an Open Inference Protocol v2
model would log it: one request event and one response event per inference, sharing the id.

Usage: send_kserve.py URL ROWS_JSON

ROWS_JSON holds {"batches": [{"id", "mode", "request_time", "response_time", "rows": [...]}]};
each row has the five numeric features, region, employment, gender, age_band, pred, score.
Even batches go out in structured mode, odd ones in binary mode, so both are exercised.
Exit status 3 means the SDK is not installed (the Rust test skips, or fails under CI).
"""

import json
import sys
import urllib.request

try:
    from cloudevents.conversion import to_binary, to_structured
    from cloudevents.http import CloudEvent
except ImportError as e:  # pragma: no cover - reported to the Rust test
    print(f"cloudevents SDK not importable: {e}", file=sys.stderr)
    sys.exit(3)

NUMERIC = ["income", "age", "debt_ratio", "credit_history_months", "num_accounts"]
TEXT = ["region", "employment", "gender", "age_band"]


def v2_request(rows):
    n = len(rows)
    inputs = [
        {
            "name": "input-0",
            "shape": [n, len(NUMERIC)],
            "datatype": "FP64",
            "data": [[r[k] for k in NUMERIC] for r in rows],
        }
    ]
    for k in TEXT:
        inputs.append({"name": k, "shape": [n], "datatype": "BYTES", "data": [r[k] for r in rows]})
    return {"id": "ignored", "inputs": inputs}


def v2_response(rows):
    n = len(rows)
    return {
        "model_name": "credit-scoring",
        "model_version": "1.0.0",
        "outputs": [
            {"name": "predict", "shape": [n], "datatype": "INT64", "data": [r["pred"] for r in rows]},
            {
                "name": "predict_proba",
                "shape": [n, 2],
                "datatype": "FP64",
                "data": [[1.0 - r["score"], r["score"]] for r in rows],
            },
        ],
    }


def post(url, headers, body):
    req = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        if resp.status != 200:
            raise SystemExit(f"agent answered {resp.status}: {resp.read()!r}")
        return json.loads(resp.read())


def main():
    url, path = sys.argv[1], sys.argv[2]
    with open(path) as f:
        spec = json.load(f)
    events = 0
    for i, batch in enumerate(spec["batches"]):
        for kind, time, data in [
            ("org.kubeflow.serving.inference.request", batch["request_time"], v2_request(batch["rows"])),
            ("org.kubeflow.serving.inference.response", batch["response_time"], v2_response(batch["rows"])),
        ]:
            attributes = {
                "id": batch["id"],
                "type": kind,
                "source": "http://localhost:9081/",
                "time": time,
                "datacontenttype": "application/json",
                "inferenceservicename": "credit-scoring",
                "namespace": "default",
                "component": "predictor",
                "endpoint": "default",
            }
            event = CloudEvent(attributes, data)
            headers, body = to_structured(event) if i % 2 == 0 else to_binary(event)
            reply = post(url, headers, body)
            events += reply["events"]
    print(json.dumps({"events": events}))


if __name__ == "__main__":
    main()
