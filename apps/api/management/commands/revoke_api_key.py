from django.core.management.base import BaseCommand, CommandError

from apps.api.services import api_keys_revoke


class Command(BaseCommand):
    help = (
        "Revoke an API key, by its prefix (the part before the dot, shown by create_api_key and the admin), "
        "or every key with a name. Cannot be undone; what the keys uploaded stays until deleted or expired."
    )

    def add_arguments(self, parser):
        parser.add_argument("name_or_prefix", help="A key's prefix, or the name given to create_api_key.")

    def handle(self, *args, name_or_prefix: str, **options):
        keys = api_keys_revoke(name_or_prefix=name_or_prefix)
        if not keys:
            raise CommandError(f"No usable API key has the prefix or name {name_or_prefix!r}.")
        for key in keys:
            self.stdout.write(f"Revoked API key {key.prefix!r} ({key.name!r}).")
