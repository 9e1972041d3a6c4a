"""Failed admin logins are limited per account and per address (django-axes), with a clear message."""

import pytest
from django.contrib.auth.models import User
from django.test import Client

pytestmark = pytest.mark.django_db

LOGIN_URL = "/admin/login/?next=/admin/"
LOCKED = "Account locked: too many login attempts. Please try again later."


@pytest.fixture(autouse=True)
def limits(settings):
    settings.AXES_FAILURE_LIMIT = 5


@pytest.fixture
def staff():
    return User.objects.create_user("reviewer", password="the-right-password", is_staff=True)


def log_in(username: str, password: str, address: str):
    return Client(REMOTE_ADDR=address).post(LOGIN_URL, {"username": username, "password": password})


def test_an_account_is_locked_after_five_wrong_passwords_even_from_other_addresses(staff):
    for i in range(4):
        assert log_in("reviewer", f"guess-{i}", f"10.9.0.{i}").status_code == 200  # the form again, with its error
    assert log_in("reviewer", "guess-4", "10.9.0.4").status_code == 429  # the fifth locks the account

    right_password = log_in("reviewer", "the-right-password", "10.9.1.1")

    assert right_password.status_code == 429
    assert LOCKED in right_password.content.decode()


def test_an_address_is_locked_after_five_failures_whatever_the_accounts(staff):
    for i in range(5):
        log_in(f"someone-{i}", "guess", "10.9.2.2")

    assert log_in("reviewer", "the-right-password", "10.9.2.2").status_code == 429
    assert log_in("reviewer", "the-right-password", "10.9.2.3").status_code == 302  # another address logs in


def test_fewer_failures_do_not_lock_and_a_success_clears_them(staff):
    for i in range(4):
        log_in("reviewer", f"guess-{i}", "10.9.3.3")
    assert log_in("reviewer", "the-right-password", "10.9.3.4").status_code == 302

    for i in range(4):
        log_in("reviewer", f"guess-{i}", "10.9.3.5")

    assert log_in("reviewer", "the-right-password", "10.9.3.6").status_code == 302  # counted afresh
