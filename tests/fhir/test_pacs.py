"""The PACS allow-list: EHR-supplied Endpoint.address is fetched from only when it is a
configured DICOMweb base or below one, compared in normal form."""

from __future__ import annotations

import pytest

from service.config import ConfigError, PacsSettings
from service.errors import NoPacsForStudy, PacsNotAllowed
from service.fhir.pacs import check_allowed, pacs_base_for, parse_base
from service.verify.imaging.study import EndpointInfo

SETTINGS = PacsSettings(
    base_url="http://pacs.example:8042/dicom-web",
    allowed_base_urls=["https://archive.example/wado", "http://[::1]:8080/dicom-web/"],
)


def wado(address: str) -> EndpointInfo:
    return EndpointInfo(address, "dicom-wado-rs")


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("http://pacs.example:8042/dicom-web", "http://pacs.example:8042/dicom-web"),
        ("http://pacs.example:8042/dicom-web/", "http://pacs.example:8042/dicom-web"),
        ("HTTP://PACS.Example:8042/dicom-web", "http://pacs.example:8042/dicom-web"),
        ("http://pacs.example.:8042/dicom-web", "http://pacs.example:8042/dicom-web"),
        ("http://pacs.example:8042/dicom-web/site-a", "http://pacs.example:8042/dicom-web/site-a"),
        ("https://archive.example:443/wado", "https://archive.example/wado"),  # default port
        ("https://archive.example/wado/", "https://archive.example/wado"),
        ("http://[::1]:8080/dicom-web", "http://[::1]:8080/dicom-web"),
    ],
)
def test_allowed(address: str, expected: str) -> None:
    assert pacs_base_for([wado(address)], SETTINGS) == expected


@pytest.mark.parametrize(
    "address",
    [
        "http://pacs.example@evil.example:8042/dicom-web",  # userinfo: the host is evil
        "http://pacs.example:8042@evil.example/dicom-web",
        "http://user:pw@pacs.example:8042/dicom-web",
        "http://pacs.example.evil:8042/dicom-web",  # a suffix is another host
        "http://evil.pacs.example:8042/dicom-web",
        "http://pacs.example:8043/dicom-web",  # other port
        "http://pacs.example/dicom-web",  # default port is not 8042
        "https://pacs.example:8042/dicom-web",  # other scheme
        "http://archive.example/wado",  # allowed only over https
        "ftp://pacs.example:8042/dicom-web",
        "file:///etc/passwd",
        "urn:verity:pacs",
        "pacs.example:8042/dicom-web",
        "http://pacs.example:8042/dicom-webx",  # not a path-segment prefix
        "http://pacs.example:8042/",  # above the allowed base
        "http://pacs.example:8042/dicom-web/../admin",
        "http://pacs.example:8042/dicom-web/%2e%2e/admin",
        "http://pacs.example:8042/dicom-web/a%2fb",
        "http://pacs.example:8042/dicom-web\\..\\admin",
        "http://pacs.example:8042/dicom-web//x",
        "http://pacs.example:8042/dicom-web?x=1",
        "http://pacs.example:8042/dicom-web#frag",
        "http://pacs.example:8042/dicom-web/ x",
        "http://pacs.example:99999/dicom-web",
        "http:///dicom-web",
        "",
    ],
)
def test_refused(address: str) -> None:
    with pytest.raises(PacsNotAllowed):
        pacs_base_for([wado(address)], SETTINGS)
    with pytest.raises(PacsNotAllowed):
        check_allowed(address, SETTINGS)


def test_refused_endpoint_is_never_replaced_by_the_configured_pacs() -> None:
    with pytest.raises(PacsNotAllowed):
        pacs_base_for([wado("http://evil.example/dicom-web")], SETTINGS)


def test_wado_rs_preferred_then_qido_rs_then_untyped() -> None:
    endpoints = [
        EndpointInfo("http://pacs.example:8042/dicom-web/untyped", None),
        EndpointInfo("http://pacs.example:8042/dicom-web/qido", "dicom-qido-rs"),
        EndpointInfo("http://pacs.example:8042/dicom-web/wado", "dicom-wado-rs"),
    ]
    assert pacs_base_for(endpoints, SETTINGS).endswith("/wado")
    assert pacs_base_for(endpoints[:2], SETTINGS).endswith("/qido")
    assert pacs_base_for(endpoints[:1], SETTINGS).endswith("/untyped")


def test_an_allowed_endpoint_beside_a_refused_one() -> None:
    endpoints = [wado("http://evil.example/dicom-web"), wado("https://archive.example/wado")]
    assert pacs_base_for(endpoints, SETTINGS) == "https://archive.example/wado"


def test_no_dicomweb_endpoint_uses_the_configured_pacs() -> None:
    assert pacs_base_for([], SETTINGS) == "http://pacs.example:8042/dicom-web"
    ihe = [EndpointInfo("http://elsewhere.example/xds", "ihe-xds")]
    assert pacs_base_for(ihe, SETTINGS) == "http://pacs.example:8042/dicom-web"


def test_no_endpoint_and_no_pacs() -> None:
    with pytest.raises(NoPacsForStudy):
        pacs_base_for([], PacsSettings(allowed_base_urls=["http://pacs.example/dicom-web"]))


def test_allowed_urls_only_without_base_url() -> None:
    settings = PacsSettings(allowed_base_urls=["http://pacs.example/dicom-web"])
    assert pacs_base_for([wado("http://pacs.example:80/dicom-web")], settings) == (
        "http://pacs.example/dicom-web"
    )


def test_malformed_configured_base_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        check_allowed("http://pacs.example/x", PacsSettings(base_url="http://u@pacs.example/x"))


def test_normal_form() -> None:
    base = parse_base("HTTPS://Archive.Example/wado/")
    assert (base.scheme, base.host, base.port, base.path) == (
        "https",
        "archive.example",
        443,
        "/wado",
    )
