from io import StringIO

from django.core.management import call_command
from rest_framework_api_key.models import APIKey


def test_create_api_key_prints_a_working_key_as_its_last_line(db):
    out = StringIO()

    call_command("create_api_key", "telegram-bot", stdout=out)

    key = out.getvalue().strip().splitlines()[-1]
    api_key = APIKey.objects.get_from_key(key)
    assert api_key.name == "telegram-bot"
    assert key not in api_key.hashed_key  # only the hash is stored
