"""API clients authenticate with a key sent in a header; keys are stored hashed by
djangorestframework-api-key. The key itself is the client: it becomes ``request.auth``.

Three spellings are accepted, as integrators' HTTP libraries and peers' docs use them:
``Authorization: Api-Key <key>``, ``Authorization: Bearer <key>`` and ``X-Api-Key: <key>``.
Never in the query string: URLs end up in access logs, proxies and browser histories, so a key
there is refused with a message that says where to put it.
"""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import BasePermission
from rest_framework_api_key.models import APIKey

AUTHORIZATION_KEYWORDS = ("api-key", "bearer")
KEY_HEADER = "X-Api-Key"
# Query parameters clients put keys in (Google's "key", many APIs' "api_key", OAuth's "access_token").
KEY_QUERY_PARAMETERS = ("api_key", "apikey", "api-key", "key", "access_token", "token")
WHERE_KEYS_GO = (
    f'Send it in a header: "Authorization: Api-Key <key>", "Authorization: Bearer <key>" or "{KEY_HEADER}: <key>".'
)


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request):
        key = api_key_sent(request)
        if not key:
            return None
        # Revoked keys too: their holder learns why the key stopped working. Only the holder:
        # a key is found by its prefix, but the rest of it must match the stored hash.
        prefix, _, _ = key.partition(".")
        api_key = APIKey.objects.filter(prefix=prefix).first()
        if api_key is None or not api_key.is_valid(key):
            raise AuthenticationFailed("The API key is not valid.")
        if api_key.revoked:
            raise AuthenticationFailed("The API key has been revoked.")
        if api_key.has_expired:
            raise AuthenticationFailed("The API key has expired.")
        return None, api_key

    def authenticate_header(self, request) -> str:
        # Makes DRF answer 401 (not 403) to requests without a key.
        return "Api-Key"


def api_key_sent(request) -> str | None:
    """The key a request carries in its headers, or None; raises AuthenticationFailed for a key in
    the query string, or two different keys in two headers (which one was meant is not ours to guess)."""
    if any(name in request.query_params for name in KEY_QUERY_PARAMETERS):
        raise AuthenticationFailed(f"API keys are not accepted in the URL, where logs keep them. {WHERE_KEYS_GO}")
    keyword, _, from_authorization = request.META.get("HTTP_AUTHORIZATION", "").strip().partition(" ")
    from_authorization = from_authorization.strip() if keyword.lower() in AUTHORIZATION_KEYWORDS else ""
    from_header = request.META.get("HTTP_X_API_KEY", "").strip()
    if from_authorization and from_header and from_authorization != from_header:
        raise AuthenticationFailed(f"Two different API keys were sent; send one. {WHERE_KEYS_GO}")
    return from_authorization or from_header or None


class HasApiKey(BasePermission):
    def has_permission(self, request, view) -> bool:
        return isinstance(request.auth, APIKey)


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """Declares the scheme in the OpenAPI schema (and the "Authorize" button of the docs page)."""

    target_class = ApiKeyAuthentication
    name = ["ApiKeyAuth", "BearerAuth", "XApiKeyAuth"]

    def get_security_requirement(self, auto_schema):
        return [{name: []} for name in self.name]  # any one of them, not all three

    def get_security_definition(self, auto_schema):
        made_by = "`python manage.py create_api_key NAME` makes a key."
        return [
            {
                "type": "apiKey",
                "in": "header",
                "name": "Authorization",
                "description": f'The value is "Api-Key <key>". {made_by}',
            },
            {"type": "http", "scheme": "bearer", "description": f"The key as a bearer token. {made_by}"},
            {"type": "apiKey", "in": "header", "name": KEY_HEADER, "description": f"The key alone. {made_by}"},
        ]
