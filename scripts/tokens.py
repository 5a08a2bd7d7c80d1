"""Bearer tokens for the harnesses that start `commerce serve` (scripts/faults.py, scripts/bench.py).

use_own_keys() makes a token key pair of the run's own (scripts/token-keys) and exports it, so
that every `serve` the harness starts checks tokens with the public half and every `simulate`
signs with the other half, whatever the caller's environment says. operator_token() is an
operator's token for the harness's own requests, from `commerce token`.
"""
import os, subprocess, tempfile


def use_own_keys():
    folder = tempfile.mkdtemp(prefix="tokens-")
    subprocess.run([os.path.join(os.path.dirname(os.path.abspath(__file__)), "token-keys"), folder], check=True, capture_output=True)
    # Empty is unset for commerce: the defaults (jwt, issuer commerce, audience commerce-api) on both sides.
    os.environ.update(COMMERCE_AUTH_KEY_FILE=os.path.join(folder, "run-public.pem"),
                      COMMERCE_AUTH_SIGNING_KEY_FILE=os.path.join(folder, "run-signing.pem"),
                      COMMERCE_AUTH="", COMMERCE_AUTH_ISSUER="", COMMERCE_AUTH_AUDIENCE="", COMMERCE_AUTH_JWKS="",
                      COMMERCE_AUTH_SIGNING_KEY="")


def operator_token(commerce):
    return subprocess.run([commerce, "token", "--operator", "harness"], check=True, capture_output=True, text=True).stdout.strip()
