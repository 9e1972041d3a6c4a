"""API clients authenticate with ``Authorization: Api-Key <key>``; keys are stored hashed by
djangorestframework-api-key. The key itself is the client: it becomes ``request.auth``."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import BasePermission
from rest_framework_api_key.models import APIKey
from rest_framework_api_key.permissions import KeyParser


class ApiKeyAuthentication(BaseAuthentication):
    key_parser = KeyParser()

    def authenticate(self, request):
        key = self.key_parser.get(request)
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
        return KeyParser.keyword


class HasApiKey(BasePermission):
    def has_permission(self, request, view) -> bool:
        return isinstance(request.auth, APIKey)


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """Declares the scheme in the OpenAPI schema (and the "Authorize" button of the docs page)."""

    target_class = ApiKeyAuthentication
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": 'The value is "Api-Key <key>"; `python manage.py create_api_key NAME` makes a key.',
        }
