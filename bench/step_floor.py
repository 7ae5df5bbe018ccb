"""The floor of the answering step's cold job: a bare cold Python that imports what the step needs
(requests, jsonschema, cryptography), checks one Ed25519 signature and POSTs one JSON body, nothing
else. Run as the step's job runs (``python -S`` with only the step's lock on PYTHONPATH).
Usage: step_floor.py URL API_KEY PUBLIC_KEY SIGNATURE TIMESTAMP RAW_BODY BODY_JSON"""

import base64
import sys

import jsonschema  # noqa: F401 - imported, as the step imports it
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

url, key, public_key, signature, timestamp, raw, body = sys.argv[1:8]
Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key)).verify(
    base64.b64decode(signature), f"{timestamp}|{raw}".encode()
)
answer = requests.post(url, data=body, headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
answer.raise_for_status()
