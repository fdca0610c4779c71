"""Run the test OpenID Connect provider: `python -m tests.support.oidc_provider.serve PORT DIR`.

Environment: OIDC_PROVIDER_USERS (JSON {username: {password, email, email_verified, groups}}),
OIDC_PROVIDER_CLIENT (JSON {client_id, client_secret, redirect_uri}). Prints "ready" once it serves.
"""

from __future__ import annotations

import json
import os
import sys
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base's name
        pass


def main(port: int, folder: str) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    os.environ["OIDC_PROVIDER_KEY"] = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    os.environ["OIDC_PROVIDER_DB"] = os.path.join(folder, "provider.sqlite3")
    os.environ["OIDC_PROVIDER_ISSUER"] = f"http://127.0.0.1:{port}/o"
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.support.oidc_provider.settings"
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.core.wsgi import get_wsgi_application
    from oauth2_provider.models import Application

    call_command("migrate", verbosity=0)
    for username, person in json.loads(os.environ["OIDC_PROVIDER_USERS"]).items():
        User.objects.create_user(username, password=person["password"])
    client = json.loads(os.environ["OIDC_PROVIDER_CLIENT"])
    Application.objects.create(
        name="mistral-chat",
        client_id=client["client_id"],
        client_secret=client["client_secret"],
        redirect_uris=client["redirect_uri"],
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        algorithm=Application.RS256_ALGORITHM,
        skip_authorization=True,
    )
    server = make_server(
        "127.0.0.1", port, get_wsgi_application(), server_class=_Server, handler_class=_Quiet
    )
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
