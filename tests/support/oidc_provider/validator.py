"""The claims each test person's ID token carries, from OIDC_PROVIDER_USERS (serve.py)."""

from __future__ import annotations

import json
import os

from oauth2_provider.oauth2_validators import OAuth2Validator


class Validator(OAuth2Validator):
    # A claim outside this map is dropped; `groups` comes with the profile scope, as Keycloak's mapper does.
    oidc_claim_scope = {**OAuth2Validator.oidc_claim_scope, "groups": "profile"}

    def get_additional_claims(self, request: object) -> dict[str, object]:
        people = json.loads(os.environ["OIDC_PROVIDER_USERS"])
        person = people[request.user.username]
        return {
            "preferred_username": request.user.username,
            "email": person.get("email", ""),
            "email_verified": person.get("email_verified", False),
            "groups": person.get("groups", []),
        }
