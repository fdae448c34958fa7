"""Medication check pages against the real FHIR and authorization servers, the real database
and the dev pill library: an order, a check with real photos, the verdict with its pictures,
the person's decision written to the EHR, and a confirmed photo accepted into the library."""

from __future__ import annotations

import asyncio
import csv
import io
import re

import pytest
from PIL import Image

from service.config import WritebackSettings
from service.web.security import CSRF_FIELD
from tests.conftest import SHARED_DATA
from tests.web.conftest import AUDITOR_SCOPES, LIBRARY_MANAGER_SCOPES, sign_in
from tests.workflows.conftest import (
    NOT_IN_LIBRARY_NDC,
    PHOTO_A,
    PHOTO_B,
    PRODUCT_A,
    PRODUCT_B,
    photo,
)

pytestmark = pytest.mark.slow
NDC_A = "00093-0311-01"  # PRODUCT_A: its PHOTO_A is a MATCH, PRODUCT_B's PHOTO_B a MISMATCH
ISSUE_SYSTEM = WritebackSettings().identifier_system
V3_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
PICTURE_URL = re.compile(r'src="(/app/(?:verifications|references)/[^"]+)"')


def unenrolled_products() -> list[tuple[str, str]]:
    """By the dataset protocol, a product with no reference and a single photo is never
    enrolled: those of labels.csv that the workflow tests do not use, as (product id, NDC)."""
    with (SHARED_DATA / "pills" / "labels.csv").open() as f:
        return [
            (row["product_id"], row["ndc"])
            for row in csv.DictReader(f)
            if row["n_ref"] == "0" and row["n_photo"] == "1" and row["ndc"] != NOT_IN_LIBRARY_NDC
        ]


async def db_rows(client, query: str, *args) -> list[tuple]:
    async with client.app.state.db.pool.connection() as conn:
        cur = await conn.execute(query, args)
        return await cur.fetchall()


async def audit_count(client, order: str) -> int:
    rows = await db_rows(client, "SELECT count(*) FROM verification WHERE order_ref = %s", order)
    return int(rows[0][0])


async def open_order(client, auth_server, ehr, ndc: str, **order) -> tuple[str, str, str, str]:
    """A patient with one order, a pharmacist signed in on that patient, the order's handle."""
    patient = ehr.patient()
    ref = ehr.order(patient, ndc, **order)
    csrf = await sign_in(client, auth_server, patient=patient)
    home = await client.get("/app/")
    assert home.status_code == 200, home.text
    handle = re.search(r'href="/app/orders/([0-9a-f]+)"', home.text).group(1)
    return patient, ref, csrf, handle


async def check(client, handle: str, csrf: str | None, photos: list[bytes], nonce: str = ""):
    page = await client.get(f"/app/orders/{handle}")
    assert page.status_code == 200, page.text
    nonce = nonce or re.search(r'name="nonce" value="([^"]+)"', page.text).group(1)
    data = {"nonce": nonce} | ({CSRF_FIELD: csrf} if csrf else {})
    files = [("photo", (f"p{i}.jpg", p, "image/jpeg")) for i, p in enumerate(photos)]
    return await client.post(f"/app/orders/{handle}/check", data=data, files=files)


async def checked(client, handle: str, csrf: str, photos: list[bytes]) -> tuple[str, str]:
    """Check, follow the 303, return (verification id, result page HTML)."""
    r = await check(client, handle, csrf, photos)
    assert r.status_code == 303, r.text
    url = r.headers["location"]
    page = await client.get(url)
    assert page.status_code == 200, page.text
    return url.rsplit("/", 1)[1], page.text


def verdict_of(html: str) -> str:
    return re.search(r'data-verdict="([A-Z_]+)"', html).group(1)


async def test_right_pill_is_a_match_with_three_pictures_kept_with_it(web_app, auth_server, ehr):
    _, order, csrf, handle = await open_order(web_app, auth_server, ehr, NDC_A)
    page = await web_app.get(f"/app/orders/{handle}")
    assert 'capture="environment"' in page.text and '<label for="photo">' in page.text
    assert 'src="/app/references/' in page.text  # a reference picture per library product
    uploaded = photo(PRODUCT_A, PHOTO_A)
    vid, html = await checked(web_app, handle, csrf, [uploaded])
    assert verdict_of(html) == "MATCH", html
    assert "This is the ordered product" in html
    pictures = PICTURE_URL.findall(html)
    assert f"/app/verifications/{vid}/images/pill-0" in pictures
    assert 'data-testid="ordered-picture"' in html and 'data-testid="identified-picture"' in html
    for url in pictures:  # every picture of the page is served to this session
        got = await web_app.get(url)
        assert got.status_code == 200 and got.headers["content-type"].startswith("image/"), url
    kept = dict(await db_rows(
        web_app, "SELECT name, data FROM verification_image WHERE verification_id = %s", vid
    ))  # fmt: skip
    assert sorted(kept) == ["photo-0", "pill-0"]
    assert bytes(kept["photo-0"]) == uploaded  # the photo as uploaded
    pill = Image.open(io.BytesIO(bytes(kept["pill-0"])))
    assert pill.format == "PNG" and max(pill.size) <= 320
    assert await audit_count(web_app, order) == 1


async def test_wrong_pill_removed_is_written_to_the_ehr_by_the_person(web_app, auth_server, ehr):
    _, _, csrf, handle = await open_order(web_app, auth_server, ehr, NDC_A)
    vid, html = await checked(web_app, handle, csrf, [photo(PRODUCT_B, PHOTO_B)])
    assert verdict_of(html) == "MISMATCH", html
    assert "This is NOT the ordered product: it looks like" in html
    assert "<fieldset" in html and "<legend" in html  # the decision form
    r = await web_app.post(f"/app/verifications/{vid}/decision",
                           data={CSRF_FIELD: csrf, "action": "removed"})  # fmt: skip
    assert r.status_code == 303, r.text
    again = await web_app.post(f"/app/verifications/{vid}/decision",
                               data={CSRF_FIELD: csrf, "action": "removed"})  # fmt: skip
    assert again.status_code == 303, again.text  # the same decision twice changes nothing
    rows = await db_rows(
        web_app, "SELECT action FROM verification_decision WHERE verification_id = %s", vid
    )
    assert rows == [("removed",)]
    issue = None
    for _ in range(150):  # the relay delivers the mitigation
        found = ehr.search(f"DetectedIssue?identifier={ISSUE_SYSTEM}|{vid}")
        if found and found[0].get("mitigation"):
            issue = found[0]
            break
        await asyncio.sleep(0.2)
    assert issue is not None, "no DetectedIssue with a mitigation reached the FHIR server"
    coding = issue["mitigation"][0]["action"]["coding"][0]
    assert coding["system"] == V3_ACT_CODE
    assert issue["mitigation"][0]["author"]["reference"] == "Practitioner/pharm-1"
    provenances = ehr.search(f"Provenance?target=DetectedIssue/{issue['id']}")
    agents = [a.get("who", {}).get("reference") for p in provenances for a in p.get("agent", [])]
    assert "Practitioner/pharm-1" in agents
    page = await web_app.get(f"/app/verifications/{vid}")
    delivery = re.search(r'id="decision-delivery">([^<]+)<', page.text).group(1)
    assert "Pat Pharmacist" in page.text and delivery == "Written to the EHR"


async def test_unrecognised_product_confirmed_then_learnt_from_the_photo(web_app, auth_server, ehr):
    product_id, ndc = unenrolled_products()[0]
    shot = (SHARED_DATA / "pills" / product_id / "photo_1.jpg").read_bytes()
    patient, _, csrf, handle = await open_order(web_app, auth_server, ehr, ndc)
    vid, html = await checked(web_app, handle, csrf, [shot])
    assert verdict_of(html) == "NOT_IN_LIBRARY", html
    r = await web_app.post(f"/app/verifications/{vid}/decision",
                           data={CSRF_FIELD: csrf, "action": "confirmed"})  # fmt: skip
    assert r.status_code == 303, r.text
    page = await web_app.get(f"/app/verifications/{vid}")
    assert "Accept this photo as a reference" not in page.text  # a pharmacist cannot
    refused = await web_app.post(f"/app/verifications/{vid}/references",
                                 data={CSRF_FIELD: csrf, "photo": "photo-0",
                                       "product": product_id})  # fmt: skip
    assert refused.status_code == 403 and "VERITY-4030" in refused.text
    manager = await sign_in(web_app, auth_server, patient=patient, scopes=LIBRARY_MANAGER_SCOPES,
                            fhir_user="Practitioner/libmgr-1", name="Lee Library")  # fmt: skip
    page = await web_app.get(f"/app/verifications/{vid}")
    assert "Accept this photo as a reference for" in page.text
    form = {CSRF_FIELD: manager, "photo": "photo-0", "product": product_id}
    for _ in range(2):  # a resend adds nothing
        r = await web_app.post(f"/app/verifications/{vid}/references", data=form)
        assert r.status_code == 303, r.text
    rows = await db_rows(
        web_app, "SELECT product_id, accepted_by, reference_image_id FROM reference_acceptance"
        " WHERE verification_id = %s", vid,
    )  # fmt: skip
    assert len(rows) == 1 and rows[0][:2] == (product_id, "Practitioner/libmgr-1")
    page = await web_app.get(f"/app/verifications/{vid}")
    assert 'data-testid="accepted"' in page.text
    home = await web_app.get("/app/")
    handle = re.search(r'href="/app/orders/([0-9a-f]+)"', home.text).group(1)
    _, html = await checked(web_app, handle, manager, [shot])
    assert verdict_of(html) == "MATCH", html  # the library learnt this product


async def test_inactive_order_and_wrong_count_are_shown_plainly(web_app, auth_server, ehr):
    _, _, csrf, handle = await open_order(web_app, auth_server, ehr, NDC_A, status="stopped",
                                          dose=2)  # fmt: skip
    page = await web_app.get(f"/app/orders/{handle}")
    top = page.text.index("<h1>")
    assert page.text.index('id="order-inactive"') < page.text.index('id="order-facts"')
    assert "This order is not active (status: stopped)" in page.text[top:]
    _, html = await checked(web_app, handle, csrf, [photo(PRODUCT_A, PHOTO_A)])
    assert 'data-finding="ORDER_INACTIVE"' in html and 'data-finding="COUNT_MISMATCH"' in html
    assert "The order says 2 per dose, but Verity found 1 pill in the photos." in html
    assert html.index('id="findings"') < html.index('id="result-facts"')


async def test_upload_errors_come_back_as_the_form_and_record_nothing(web_app, auth_server, ehr):
    _, order, csrf, handle = await open_order(web_app, auth_server, ehr, NDC_A)
    r = await check(web_app, handle, csrf, [b"this is not an image at all"])
    assert r.status_code == 415 and "VERITY-4101" in r.text and "Nothing was recorded" in r.text
    assert 'id="check-form"' in r.text
    assert await audit_count(web_app, order) == 0


async def test_check_without_form_token_is_refused_and_records_nothing(web_app, auth_server, ehr):
    _, order, _, handle = await open_order(web_app, auth_server, ehr, NDC_A)
    r = await check(web_app, handle, None, [photo(PRODUCT_A, PHOTO_A)])
    assert r.status_code == 403 and "VERITY-4602" in r.text
    assert await audit_count(web_app, order) == 0


async def test_double_submit_with_one_nonce_records_one_verification(web_app, auth_server, ehr):
    _, order, csrf, handle = await open_order(web_app, auth_server, ehr, NDC_A)
    shot = photo(PRODUCT_A, PHOTO_A)
    nonce = "double-click-nonce-" + order.rsplit("/", 1)[1][:12]
    first, second = await asyncio.gather(
        check(web_app, handle, csrf, [shot], nonce), check(web_app, handle, csrf, [shot], nonce)
    )
    assert first.status_code == second.status_code == 303, (first.text, second.text)
    assert first.headers["location"] == second.headers["location"]
    assert await audit_count(web_app, order) == 1


async def test_another_patients_order_and_verification_are_refused(web_app, auth_server, ehr):
    _, _, csrf_b, handle_b = await open_order(web_app, auth_server, ehr, NDC_A)
    vid_b, _ = await checked(web_app, handle_b, csrf_b, [photo(PRODUCT_A, PHOTO_A)])
    other_order = ehr.order(ehr.patient(), NDC_A)
    _, _, csrf, _ = await open_order(web_app, auth_server, ehr, NDC_A)
    # A handle to another patient's order in this session (as if forged into it).
    await db_rows(
        web_app, "UPDATE web_session SET data = jsonb_set(data, '{handles,feedfacefeedfacefeed}',"
        " to_jsonb(%s::text)) WHERE data->>'csrf' = %s RETURNING 1", other_order, csrf,
    )  # fmt: skip
    r = await web_app.get("/app/orders/feedfacefeedfacefeed")
    assert r.status_code == 403 and "VERITY-4603" in r.text
    posted = await web_app.post(
        "/app/orders/feedfacefeedfacefeed/check",
        data={CSRF_FIELD: csrf, "nonce": "n" * 20},
        files=[("photo", ("p.jpg", photo(PRODUCT_A, PHOTO_A), "image/jpeg"))],
    )
    assert posted.status_code == 403 and "VERITY-4603" in posted.text
    assert await audit_count(web_app, other_order) == 0
    for url in (f"/app/verifications/{vid_b}", f"/app/verifications/{vid_b}/images/pill-0"):
        r = await web_app.get(url)
        assert r.status_code == 403 and "VERITY-4603" in r.text, url
    decided = await web_app.post(f"/app/verifications/{vid_b}/decision",
                                 data={CSRF_FIELD: csrf, "action": "confirmed"})  # fmt: skip
    assert decided.status_code == 403


async def test_pages_need_a_session(web_app):
    web_app.cookies.clear()
    for url in ("/app/orders/abc", "/app/references/1",
                "/app/verifications/00000000-0000-0000-0000-000000000000"):  # fmt: skip
        r = await web_app.get(url)
        assert r.status_code == 401 and "VERITY-4601" in r.text, url


async def test_a_product_the_library_never_had_is_made_from_the_order(web_app, auth_server, ehr):
    product_id, ndc = unenrolled_products()[1]
    await db_rows(web_app, "DELETE FROM product WHERE id = %s RETURNING id", product_id)
    shot = (SHARED_DATA / "pills" / product_id / "photo_1.jpg").read_bytes()
    patient, _, csrf, handle = await open_order(web_app, auth_server, ehr, ndc)
    page = await web_app.get(f"/app/orders/{handle}")
    assert 'id="no-products"' in page.text
    vid, html = await checked(web_app, handle, csrf, [shot])
    assert verdict_of(html) == "NOT_IN_LIBRARY", html
    r = await web_app.post(f"/app/verifications/{vid}/decision",
                           data={CSRF_FIELD: csrf, "action": "confirmed"})  # fmt: skip
    assert r.status_code == 303, r.text
    manager = await sign_in(web_app, auth_server, patient=patient, scopes=LIBRARY_MANAGER_SCOPES,
                            fhir_user="Practitioner/libmgr-1")  # fmt: skip
    page = await web_app.get(f"/app/verifications/{vid}")
    assert "a new library product made from the order" in page.text
    r = await web_app.post(
        f"/app/verifications/{vid}/references",
        data={CSRF_FIELD: manager, "photo": "photo-0", "product": "order"},
    )
    assert r.status_code == 303, r.text
    made = await db_rows(web_app, "SELECT id, ndcs FROM product WHERE id = %s", f"ndc_{ndc}")
    assert made == [(f"ndc_{ndc}", [ndc])]
    home = await web_app.get("/app/")
    handle = re.search(r'href="/app/orders/([0-9a-f]+)"', home.text).group(1)
    _, html = await checked(web_app, handle, manager, [shot])
    assert verdict_of(html) == "MATCH", html


async def test_an_auditor_outside_a_patient_launch_reads_but_does_not_decide(
    web_app, auth_server, ehr
):
    _, _, csrf, handle = await open_order(web_app, auth_server, ehr, NDC_A)
    vid, _ = await checked(web_app, handle, csrf, [photo(PRODUCT_B, PHOTO_B)])
    auditor = await sign_in(web_app, auth_server, patient=None, fhir_user="Practitioner/aud-1",
                            scopes=AUDITOR_SCOPES)  # fmt: skip
    page = await web_app.get(f"/app/verifications/{vid}")
    assert page.status_code == 200 and verdict_of(page.text) == "MISMATCH"
    assert 'id="decision-form"' not in page.text
    assert (await web_app.get(f"/app/verifications/{vid}/images/pill-0")).status_code == 200
    r = await web_app.post(f"/app/verifications/{vid}/decision",
                           data={CSRF_FIELD: auditor, "action": "removed"})  # fmt: skip
    assert r.status_code == 403 and "VERITY-4603" in r.text
