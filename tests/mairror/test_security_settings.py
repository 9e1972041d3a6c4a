"""Security settings as a browser and a deployment check see them: headers, cookies, HTTPS, the secret key."""

import json
import os
import secrets
import subprocess
import sys
import textwrap

import pytest

from mairror.settings import BASE_DIR

pytestmark = pytest.mark.django_db


def policy(response) -> dict[str, list[str]]:
    """The Content-Security-Policy header as {directive: [sources]}."""
    directives = (part.split() for part in response["Content-Security-Policy"].split(";") if part.strip())
    return {name: sources for name, *sources in directives}


def run_django(tmp_path, env: dict[str, str], argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    """A Python process of this app with only ``env`` (and a database of its own) set."""
    return subprocess.run(
        [sys.executable, *argv],
        cwd=BASE_DIR,
        env={"PATH": os.environ["PATH"], "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def production_env(**extra: str) -> dict[str, str]:
    return {
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_SECURE": "true",
        "ALLOWED_HOSTS": "mairror.example.org",
        "DJANGO_DEBUG": "false",
        **extra,
    }


def test_pages_forbid_framing_sniffing_and_scripts_from_elsewhere(client):
    response = client.get("/")

    csp = policy(response)
    assert csp["default-src"] == ["'self'"]
    assert csp["script-src"] == ["'self'"]  # no nonce on a page without inline code, never 'unsafe-inline'
    assert csp["style-src"] == ["'self'"]
    assert csp["img-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["object-src"] == ["'none'"]
    assert "upgrade-insecure-requests" not in csp  # plain HTTP here: it would break the page
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    assert "Strict-Transport-Security" not in response
    assert response.cookies["csrftoken"]["httponly"] is True
    assert response.cookies["csrftoken"]["secure"] == ""


def test_the_api_docs_run_their_inline_code_by_nonce_and_alone_may_load_data_images(client):
    response = client.get("/api/docs/")

    csp = policy(response)
    [nonce] = {source for source in csp["script-src"] if source.startswith("'nonce-")}
    page = response.content.decode()
    assert page.count(f'nonce="{nonce[7:-1]}"') == 2  # the inline script and style
    assert "'unsafe-inline'" not in csp["script-src"]
    assert csp["img-src"] == ["'self'", "data:"]
    assert client.get("/api/docs/").content.decode() != page  # a new nonce per response


PROBE_HTTPS = textwrap.dedent("""
    import json
    import django
    django.setup()
    from django.test import Client

    client = Client()
    plain = client.get("/", HTTP_HOST="mairror.example.org")
    health = client.get("/healthz", HTTP_HOST="mairror.example.org")
    tls = client.get("/", HTTP_HOST="mairror.example.org", HTTP_X_FORWARDED_PROTO="https")
    print(json.dumps({
        "plain": [plain.status_code, plain.get("Location")],
        "health": health.status_code,
        "tls": tls.status_code,
        "hsts": tls.get("Strict-Transport-Security"),
        "csp": tls["Content-Security-Policy"],
        "csrf_cookie": dict(tls.cookies["csrftoken"]),
    }))
""")


def test_behind_a_tls_proxy_http_is_redirected_and_https_gets_hsts_and_secure_cookies(tmp_path):
    env = production_env(DJANGO_BEHIND_TLS_PROXY="true", DJANGO_SETTINGS_MODULE="mairror.settings")

    result = run_django(tmp_path, env, ["-c", PROBE_HTTPS])

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["plain"] == [301, "https://mairror.example.org/"]
    assert report["health"] == 200  # load balancers probe over plain HTTP
    assert report["tls"] == 200
    assert report["hsts"] == "max-age=31536000"  # subdomains and preload are opt-in
    assert "upgrade-insecure-requests" in report["csp"]
    assert report["csrf_cookie"]["secure"] is True
    assert report["csrf_cookie"]["httponly"] is True


def test_a_production_environment_passes_the_deployment_check(tmp_path):
    result = run_django(tmp_path, production_env(), ["manage.py", "check", "--deploy", "--fail-level", "WARNING"])

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_the_deployment_check_fails_on_the_development_key_or_without_tls(tmp_path):
    env = production_env()
    del env["DJANGO_SECRET_KEY"]
    without_key = run_django(tmp_path, env, ["manage.py", "check", "--deploy", "--fail-level", "WARNING"])
    without_tls = run_django(
        tmp_path, production_env(DJANGO_SECURE="false"), ["manage.py", "check", "--deploy", "--fail-level", "WARNING"]
    )

    assert without_key.returncode != 0 and "security.W009" in without_key.stderr
    assert without_tls.returncode != 0
    for check in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert check in without_tls.stderr


def test_gunicorn_refuses_to_serve_with_the_development_key(tmp_path):
    env = production_env()
    del env["DJANGO_SECRET_KEY"]

    result = run_django(tmp_path, env, ["-m", "gunicorn", "mairror.wsgi", "--bind", "127.0.0.1:0", "--workers", "1"])

    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is not set: refusing to serve with the development key." in result.stderr
