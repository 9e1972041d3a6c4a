"""Writes of the API's own: its keys."""

from django.db.models import Q
from rest_framework_api_key.models import APIKey


def api_keys_revoke(*, name_or_prefix: str) -> list[APIKey]:
    """Revoke the key with this prefix, or every key with this name; returns those newly revoked.

    Revoking cannot be undone. The keys stay, with what they uploaded: a revoked key gets 401.
    """
    keys = list(APIKey.objects.filter(Q(prefix=name_or_prefix) | Q(name=name_or_prefix), revoked=False))
    APIKey.objects.filter(pk__in=[key.pk for key in keys]).update(revoked=True)
    return keys
