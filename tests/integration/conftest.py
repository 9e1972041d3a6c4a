import pytest


@pytest.fixture(autouse=True)
def _stores(stores, faces):
    """Every integration test runs against the session's real Redis and MongoDB, with no faces left behind."""
