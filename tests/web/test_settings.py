"""The web app's settings refuse what would make it unsafe to start."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from service.config import Settings, WebSettings

GOOD = {"enabled": True, "public_url": "https://verity.hospital.example", "client_id": "verity"}
SECRET = "k" * 16 + "Q" * 16


def test_off_by_default_and_needs_nothing():
    assert WebSettings().enabled is False


@pytest.mark.parametrize("secret", [None, "too-short"])
def test_a_missing_or_short_session_secret_is_refused(secret):
    with pytest.raises(ValidationError, match="SESSION_SECRET"):
        WebSettings(**GOOD, session_secret=SecretStr(secret) if secret else None)


def test_the_secret_may_come_from_a_file(tmp_path):
    f = tmp_path / "secret"
    f.write_text(SECRET + "\n")
    web = WebSettings(**GOOD, session_secret_file=f)
    assert web.cookie_secret() == SECRET
    assert web.redirect_uri == "https://verity.hospital.example/app/callback"


def test_samesite_none_needs_secure_cookies():
    with pytest.raises(ValidationError, match="Secure"):
        WebSettings(**GOOD, session_secret=SecretStr(SECRET), cookie_samesite="none",
                    cookie_secure=False)  # fmt: skip


def test_the_web_app_needs_the_ehr(tmp_path):
    web = WebSettings(**GOOD, session_secret=SecretStr(SECRET))
    with pytest.raises(ValidationError, match="VERITY_FHIR__BASE_URL"):
        Settings(web=web, data_dir=tmp_path)
    Settings(web=web, data_dir=tmp_path, fhir={"base_url": "https://ehr.example/fhir"})
