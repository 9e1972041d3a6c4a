"""Signals other apps listen to, so that uploads need not know who else cares about them."""

from django.dispatch import Signal

# Sent once, after an upload reaches done or failed (inside the transaction that set it:
# receivers that start tasks should use ``transaction.on_commit``). Argument: ``upload_id``.
upload_finished = Signal()
