"""An OpenID Connect provider inside the test process: real RS256 ID tokens, signed by a test key.

`FakeProvider.install(monkeypatch)` answers Authlib's HTTP calls (discovery,
keys, token endpoint) from here, so the refused cases (audience, expiry,
signature, nonce) run in-process against real tokens; the real provider
process (tests/support/oidc_provider/) covers the happy path end to end.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import requests
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwt
from joserfc.jwk import RSAKey

from webapp.accounts.oidc_settings import OidcProvider

ISSUER = "https://id.example.test"
PROVIDER = OidcProvider(
    id="test",
    label="Test ID",
    issuer=ISSUER,
    client_id="mistral-chat",
    client_secret="s3cret",
    groups_claim="groups",
)
KEY = RSAKey.generate_key(2048, parameters={"kid": "k1"})


def _response(status: int, body: object) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(body).encode()
    response.headers["Content-Type"] = "application/json"
    return response


@dataclass
class FakeProvider:
    """The provider's side; set `claims` (and `key`) before the callback, or `down` to refuse connections."""

    claims: dict[str, object] = field(default_factory=dict)
    key: RSAKey = field(default_factory=lambda: KEY)
    down: bool = False
    nonce: str = ""
    issuer_in_discovery: str = ISSUER

    def install(self, monkeypatch) -> FakeProvider:
        fake = self

        def request(session, method: str, url: str, **kwargs: object) -> requests.Response:
            if fake.down:
                raise requests.ConnectionError(f"connection refused: {url}")
            if url == PROVIDER.metadata_url:
                return _response(
                    200,
                    {
                        "issuer": fake.issuer_in_discovery,
                        "authorization_endpoint": f"{ISSUER}/authorize",
                        "token_endpoint": f"{ISSUER}/token",
                        "jwks_uri": f"{ISSUER}/jwks",
                        "id_token_signing_alg_values_supported": ["RS256"],
                    },
                )
            if url == f"{ISSUER}/jwks":
                return _response(200, {"keys": [KEY.as_dict(private=False)]})
            if url == f"{ISSUER}/token":
                return _response(
                    200, {"access_token": "at", "token_type": "Bearer", "id_token": fake.id_token()}
                )
            return _response(404, {"error": "not_found"})

        monkeypatch.setattr(OAuth2Session, "request", request)
        return self

    def id_token(self, **overrides: object) -> str:
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": PROVIDER.client_id,
            "iat": now,
            "exp": now + 300,
            "nonce": self.nonce,
            **self.claims,
            **overrides,
        }
        return jwt.encode({"alg": "RS256", "kid": "k1"}, claims, self.key)

    def remember_nonce(self, authorize_url: str) -> str:
        """The state of the redirect to the provider; the nonce goes into the next ID token."""
        query = parse_qs(urlsplit(authorize_url).query)
        self.nonce = query["nonce"][0]
        return query["state"][0]
