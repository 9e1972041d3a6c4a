"""The few Bot API methods the bot needs, over HTTPS with httpx.

Why httpx and not python-telegram-bot: the bot calls five methods from Celery tasks, which are
synchronous. python-telegram-bot (v20+) is asyncio-first, so every task would run an event loop,
and it brings its own update dispatching, which the webhook view and Celery already do here. httpx
is small, synchronous when asked, already a dependency, and the tests point it at a fake Bot API by
changing one base URL.

The token is part of every Bot API URL, so no URL is ever logged or put in an exception: errors
name the method, and any text from elsewhere is redacted. (The settings keep httpx's own request
log, which prints URLs, at WARNING.)
"""

import json

import httpx
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

# Telegram lets bots download files up to this size; getFile refuses larger ones.
MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024
TIMEOUT = httpx.Timeout(30.0, connect=10.0)


class BotApiError(Exception):
    """The Bot API refused a request (4xx other than 429): sending it again will not help."""

    def __init__(self, method: str, status: int, description: str):
        super().__init__(method, status, description)  # all in args: Celery pickles failures
        self.method, self.status, self.description = method, status, description

    def __str__(self) -> str:
        return f"{self.method}: HTTP {self.status} {self.description}".strip()


class BotApiUnavailable(Exception):
    """The Bot API could not be reached or failed (network error, 5xx): worth trying again later."""


class BotApiRateLimited(BotApiUnavailable):
    """429: Telegram says how many seconds to wait before the next request."""

    def __init__(self, method: str, retry_after: int):
        super().__init__(method, retry_after)
        self.method, self.retry_after = method, retry_after

    def __str__(self) -> str:
        return f"{self.method}: HTTP 429, retry after {self.retry_after} s"


class DownloadTooLarge(Exception):
    """A file grew past the allowed size while downloading (its announced size was missing or wrong)."""


class BotApi:
    """A Bot API session; use it as a context manager so its connections are closed."""

    def __init__(self, *, token: str, base_url: str):
        self._token = token
        self._client = httpx.Client(base_url=base_url.rstrip("/"), timeout=TIMEOUT)

    def __enter__(self) -> "BotApi":
        return self

    def __exit__(self, *exc_info) -> None:
        self._client.close()

    def get_file(self, file_id: str) -> dict:
        """``{"file_id", "file_size", "file_path", ...}``; ``file_path`` is what ``download`` takes."""
        return self._call("getFile", json={"file_id": file_id})

    def download(self, file_path: str, *, max_bytes: int) -> bytes:
        """The file's bytes; raises DownloadTooLarge as soon as more than ``max_bytes`` arrived."""
        try:
            with self._client.stream("GET", f"/file/bot{self._token}/{file_path}") as response:
                if response.status_code != httpx.codes.OK:
                    response.read()
                    self._result(response, "download")
                data = bytearray()
                for chunk in response.iter_bytes():
                    data += chunk
                    if len(data) > max_bytes:
                        raise DownloadTooLarge(f"more than {max_bytes} bytes")
                return bytes(data)
        except httpx.RequestError as error:
            raise self._unavailable("download", error) from None

    def send_message(self, chat_id: int, text: str, *, reply_to: int | None = None) -> dict:
        payload = {"chat_id": chat_id, "text": text}
        if reply_to is not None:
            payload["reply_parameters"] = _reply_parameters(reply_to)
        return self._call("sendMessage", json=payload)

    def send_photo(self, chat_id: int, photo: bytes, *, caption: str, reply_to: int | None = None) -> dict:
        """A JPEG as a new upload (multipart); the caption must fit Telegram's 1024 characters."""
        fields = {"chat_id": str(chat_id), "caption": caption}
        if reply_to is not None:
            fields["reply_parameters"] = json.dumps(_reply_parameters(reply_to))
        return self._call("sendPhoto", data=fields, files={"photo": ("photo.jpg", photo, "image/jpeg")})

    def set_webhook(self, url: str, *, secret_token: str, allowed_updates: list[str]) -> bool:
        return self._call(
            "setWebhook", json={"url": url, "secret_token": secret_token, "allowed_updates": allowed_updates}
        )

    def _call(self, method: str, **request):
        try:
            response = self._client.post(f"/bot{self._token}/{method}", **request)
        except httpx.RequestError as error:
            raise self._unavailable(method, error) from None
        return self._result(response, method)

    def _result(self, response: httpx.Response, method: str):
        """The ``result`` of a successful answer; otherwise raise the error the answer stands for."""
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code == httpx.codes.TOO_MANY_REQUESTS:
            retry_after = (body.get("parameters") or {}).get("retry_after") or response.headers.get("Retry-After")
            raise BotApiRateLimited(method, _seconds(retry_after))
        if response.status_code >= httpx.codes.INTERNAL_SERVER_ERROR:
            raise BotApiUnavailable(f"{method}: HTTP {response.status_code}")
        if response.is_success and body.get("ok"):
            return body["result"]
        raise BotApiError(method, response.status_code, self._redact(str(body.get("description", ""))))

    def _unavailable(self, method: str, error: httpx.RequestError) -> BotApiUnavailable:
        return BotApiUnavailable(f"{method}: {type(error).__name__}: {self._redact(str(error))}")

    def _redact(self, text: str) -> str:
        return text.replace(self._token, "<token>") if self._token else text


def bot_api() -> BotApi:
    """A session with the configured bot."""
    if not settings.TELEGRAM_BOT_TOKEN:
        raise ImproperlyConfigured("TELEGRAM_BOT_TOKEN is not set.")
    return BotApi(token=settings.TELEGRAM_BOT_TOKEN, base_url=settings.TELEGRAM_API_BASE)


def _reply_parameters(message_id: int) -> dict:
    # Still answer when the user deleted their message meanwhile.
    return {"message_id": message_id, "allow_sending_without_reply": True}


def _seconds(value) -> int:
    try:
        return max(1, int(value))
    except (TypeError, ValueError):
        return 1
