from django.core.management.base import BaseCommand
from rest_framework_api_key.models import APIKey


class Command(BaseCommand):
    help = "Create an API key for a client. The key is printed once, as the last line; only its hash is stored."

    def add_arguments(self, parser):
        parser.add_argument("name", help="Who the key is for, e.g. 'telegram-bot' or 'alice laptop'.")

    def handle(self, *args, name: str, **options):
        api_key, key = APIKey.objects.create_key(name=name)
        self.stdout.write(
            f"Created API key {api_key.prefix!r} for {name!r}; "
            "send it as 'X-Api-Key: <key>' or 'Authorization: Bearer <key>'."
        )
        self.stdout.write("It is shown only this once:")
        self.stdout.write(key)
