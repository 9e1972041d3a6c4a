from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from apps.telegram.bot_api import BotApiError, BotApiUnavailable
from apps.telegram.services import telegram_webhook_set


class Command(BaseCommand):
    help = "Tell Telegram to post the bot's updates to URL (https://<host>/telegram/webhook), with the webhook secret."

    def add_arguments(self, parser):
        parser.add_argument("url")

    def handle(self, *args, url, **options):
        try:
            telegram_webhook_set(url=url)
        except (ImproperlyConfigured, BotApiError, BotApiUnavailable) as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"Webhook set: Telegram now posts updates to {url}")
