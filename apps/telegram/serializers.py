"""The shape of a Telegram update, as far as the bot reads it (https://core.telegram.org/bots/api#update).

Telegram never sends anything else, so a body that does not fit is not an update: the webhook
answers 400 instead of storing it or failing later on a wrong type. Fields the bot does not read
are not checked; the payload is stored as it came.
"""

from rest_framework import serializers

INT64 = 2**63  # Telegram's identifiers fit in a signed 64-bit integer, as the SQL columns do


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer, not a boolean, a float or a string of digits."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


def identifier(**kwargs) -> StrictIntegerField:
    return StrictIntegerField(min_value=-INT64, max_value=INT64 - 1, **kwargs)


class StrictCharField(serializers.CharField):
    """A JSON string (DRF's CharField would turn a number into one)."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class ChatSerializer(serializers.Serializer):
    id = identifier()
    type = StrictCharField(required=False)


class PhotoSizeSerializer(serializers.Serializer):
    file_id = StrictCharField()
    width = StrictIntegerField(min_value=0, required=False)
    height = StrictIntegerField(min_value=0, required=False)
    file_size = StrictIntegerField(min_value=0, required=False)


class DocumentSerializer(serializers.Serializer):
    file_id = StrictCharField()
    mime_type = StrictCharField(required=False, allow_blank=True)
    file_size = StrictIntegerField(min_value=0, required=False)


class MessageSerializer(serializers.Serializer):
    message_id = identifier()
    chat = ChatSerializer()
    text = StrictCharField(required=False, allow_blank=True, trim_whitespace=False)
    photo = PhotoSizeSerializer(many=True, required=False)
    document = DocumentSerializer(required=False)


class UpdateSerializer(serializers.Serializer):
    update_id = StrictIntegerField(min_value=0, max_value=INT64 - 1)
    message = MessageSerializer(required=False)


def update_errors(update: object) -> str | None:
    """None for something shaped like an update, else what is wrong with it, in one line."""
    if not isinstance(update, dict):
        return "an update is a JSON object"
    serializer = UpdateSerializer(data=update)
    if serializer.is_valid():
        return None
    return "; ".join(_flatten(serializer.errors))


def _flatten(errors, path: str = "") -> list[str]:
    if isinstance(errors, dict):
        return [line for key, value in errors.items() for line in _flatten(value, f"{path}.{key}" if path else key)]
    if isinstance(errors, list) and errors and not isinstance(errors[0], str):
        return [line for i, value in enumerate(errors) for line in _flatten(value, f"{path}[{i}]") if value]
    return [f"{path}: {' '.join(str(e) for e in errors)}"]
