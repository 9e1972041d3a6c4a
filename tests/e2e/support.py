"""Helpers of the browser tests."""

# The width of an image once it has loaded (rejects if it cannot be loaded), for ``locator.evaluate``.
LOADED_WIDTH = "img => img.decode().then(() => img.naturalWidth)"
