import io
import time
import uuid

import numpy as np
import pytest
from PIL import Image

from tests.conftest import pill_image

REF = ("ndc_00049-4910-30", "ref_1.jpg")  # sertraline 100 mg, studio reference


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


async def _new_product(api, **extra):
    pid = f"test-{uuid.uuid4().hex[:8]}"
    body = {
        "id": pid,
        "name": "SERTRALINE",
        "ingredients": [{"name": "SERTRALINE", "strength": "100 mg"}],
        "ndcs": ["00049-4910-30"],
        "dose_form": "tablet",
        **extra,
    }
    resp = await api.post("/v1/library/products", json=body)
    assert resp.status_code == 201, resp.text
    return pid


async def _counts(api, pid):
    body = (await api.get(f"/v1/library/products/{pid}")).json()
    return len(body["images"])


async def test_product_crud_and_search(api):
    pid = await _new_product(api)
    dup = await api.post("/v1/library/products", json={"id": pid})
    assert dup.status_code == 409 and dup.json()["code"] == "VERITY-4201"
    got = (await api.get(f"/v1/library/products/{pid}")).json()
    assert got["clinical_drug"] == "SERTRALINE 100 mg" and got["images"] == []
    found = (await api.get("/v1/library/products", params={"q": pid})).json()
    assert [p["id"] for p in found] == [pid]
    put = await api.put(f"/v1/library/products/{pid}", json={"id": pid, "name": "Renamed"})
    assert put.status_code == 200 and put.json()["name"] == "Renamed"
    assert (await api.delete(f"/v1/library/products/{pid}")).status_code == 204
    gone = await api.get(f"/v1/library/products/{pid}")
    assert gone.status_code == 404 and gone.json()["code"] == "VERITY-4200"


async def test_bad_product_body(api):
    resp = await api.post("/v1/library/products", json={"id": "has space", "rxcui": "abc"})
    assert resp.status_code == 422 and resp.json()["code"] == "VERITY-4000"


@pytest.mark.slow
async def test_enrol_then_identify_the_same_pill(api):
    pid = await _new_product(api)
    data = pill_image(*REF)
    resp = await api.post(
        f"/v1/library/products/{pid}/images", files={"image": ("ref.jpg", data, "image/jpeg")}
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["added"] is True and body["views"] >= 1
    again = await api.post(
        f"/v1/library/products/{pid}/images", files={"image": ("ref.jpg", data, "image/jpeg")}
    )
    assert again.json()["added"] is False and again.json()["image_id"] == body["image_id"]
    ident = await api.post("/v1/identify", files={"photo": ("q.jpg", data, "image/jpeg")})
    assert ident.status_code == 200, ident.text
    candidates = ident.json()["pills"][0]["candidates"]
    best = candidates[0]["evidence"]["emb_sim"]
    # other tests' products in the session library may hold this very image: a tie at the top
    tied = {c["product_id"] for c in candidates if c["evidence"]["emb_sim"] >= best - 1e-4}
    assert pid in tied and best > 0.99
    assert set(candidates[0]["evidence"]) >= {"emb_sim", "imprint", "logit"}


@pytest.mark.slow
async def test_models_run_with_no_database_connection_held(api, monkeypatch):
    """Enrolment and identification run the models first and take a pooled connection only
    for their database steps, so slow model work never holds the pool."""
    pills = api.app.state.pills
    pool = api.app.state.db.pool
    held: list[tuple[str, int]] = []

    def spy(name, real):  # the real method, with the pool's state noted as it starts
        def run(*args, **kwargs):
            stats = pool.get_stats()
            held.append((name, stats["pool_size"] - stats["pool_available"]))
            return real(*args, **kwargs)

        return run

    for name in ("enrol_image", "analyse_bytes"):
        monkeypatch.setattr(pills.engine, name, spy(name, getattr(pills.engine, name)))
    pid = await _new_product(api)
    data = pill_image(*REF)
    enrolled = await api.post(
        f"/v1/library/products/{pid}/images", files={"image": ("ref.jpg", data, "image/jpeg")}
    )
    assert enrolled.status_code == 201, enrolled.text
    ident = await api.post("/v1/identify", files={"photo": ("q.jpg", data, "image/jpeg")})
    assert ident.status_code == 200, ident.text
    assert pid in {c["product_id"] for c in ident.json()["pills"][0]["candidates"]}
    assert held == [("enrol_image", 0), ("analyse_bytes", 0)]


@pytest.mark.slow
async def test_embeddings_and_compare(api):
    data = pill_image(*REF)
    emb = (await api.post("/v1/embeddings", files={"image": ("a.jpg", data, "image/jpeg")})).json()
    vec = np.asarray(emb["embedding"])
    assert emb["dim"] == len(vec) and abs(np.linalg.norm(vec) - 1) < 1e-3
    assert emb["model_version"].startswith(emb["model"])
    same = (
        await api.post(
            "/v1/compare", files={"image_a": ("a.jpg", data), "image_b": ("b.jpg", data)}
        )
    ).json()
    other = pill_image("ndc_00093-7155-98", "photo_1.jpg")  # a red simvastatin tablet
    diff = (
        await api.post(
            "/v1/compare", files={"image_a": ("a.jpg", other), "image_b": ("b.jpg", data)}
        )
    ).json()
    assert same["cosine_similarity"] > 0.95 and same["euclidean_distance"] < 0.35
    assert diff["combined_score"] < same["combined_score"]
    assert diff["band"] != "MATCH"


def _truncated_jpeg():
    return pill_image(*REF)[:2000]


def _bomb():
    # 20000 x 20000 one-bit PNG: tiny file, 400 megapixels once decoded.
    buf = io.BytesIO()
    Image.new("1", (20000, 20000)).save(buf, format="PNG")
    return buf.getvalue()


def _blank():
    return _png(np.full((480, 640, 3), 200, dtype=np.uint8))


@pytest.mark.parametrize(
    "make,code,status",
    [
        (lambda: b"", "VERITY-4100", 422),
        (lambda: b"this is a text file, not a JPEG\n" * 10, "VERITY-4101", 415),
        (_truncated_jpeg, "VERITY-4103", 422),
        (_bomb, "VERITY-4102", 413),
    ],
)
async def test_bad_images_get_their_own_error_and_change_nothing(api, make, code, status):
    pid = await _new_product(api)
    data = make()
    enrol = await api.post(
        f"/v1/library/products/{pid}/images", files={"image": ("x.jpg", data, "image/jpeg")}
    )
    assert (enrol.status_code, enrol.json()["code"]) == (status, code), enrol.text
    assert await _counts(api, pid) == 0
    ident = await api.post("/v1/identify", files={"photo": ("x.jpg", data, "image/jpeg")})
    assert (ident.status_code, ident.json()["code"]) == (status, code)


async def test_photo_without_pill(api):
    resp = await api.post("/v1/identify", files={"photo": ("blank.png", _blank(), "image/png")})
    assert resp.status_code == 422 and resp.json()["code"] == "VERITY-4104"


async def test_enrol_into_unknown_product(api):
    resp = await api.post(
        "/v1/library/products/nope-404/images", files={"image": ("r.jpg", pill_image(*REF))}
    )
    assert resp.status_code == 404 and resp.json()["code"] == "VERITY-4200"


async def test_library_needs_a_token_and_the_write_scope(api, auth_server):
    no_token = await api.get("/v1/library/products", headers={"Authorization": ""})
    assert no_token.status_code == 401 and no_token.json()["code"] == "VERITY-4010"
    assert no_token.headers["www-authenticate"].startswith("Bearer")
    reader = auth_server.mint_token(
        "api-caller", scope="system/*.read", resource=auth_server.api_audience
    )
    headers = {"Authorization": f"Bearer {reader['access_token']}"}
    assert (await api.get("/v1/library/products", headers=headers)).status_code == 200
    denied = await api.post("/v1/library/products", json={"id": "x-denied"}, headers=headers)
    assert denied.status_code == 403 and denied.json()["code"] == "VERITY-4030"


async def test_enrolment_needs_a_token_with_the_write_scope_and_stores_nothing(api, auth_server):
    """Regression: a reference image could be enrolled without any token (a poisoned library
    makes a wrong pill come back as MATCH)."""
    pid = await _new_product(api)
    url = f"/v1/library/products/{pid}/images"
    photo = {"image": ("ref.jpg", pill_image(*REF), "image/jpeg")}
    anonymous = await api.post(url, files=photo, headers={"Authorization": ""})
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "VERITY-4010"
    assert await _counts(api, pid) == 0
    now = int(time.time())
    reader = auth_server.sign(
        {
            "iss": auth_server.issuer, "aud": auth_server.api_audience, "sub": "reader",
            "client_id": "reader", "iat": now, "exp": now + 300, "scope": "system/Library.rs",
        }
    )  # fmt: skip
    denied = await api.post(url, files=photo, headers={"Authorization": f"Bearer {reader}"})
    assert denied.status_code == 403 and denied.json()["code"] == "VERITY-4030", denied.text
    assert await _counts(api, pid) == 0
    # the same token reads the library: only the write scope was missing
    readable = await api.get(
        f"/v1/library/products/{pid}", headers={"Authorization": f"Bearer {reader}"}
    )
    assert readable.status_code == 200 and readable.json()["images"] == []


@pytest.mark.slow
async def test_reembed_restores_every_view_under_the_current_model(api):
    from service.store import vectors

    pid = await _new_product(api)
    resp = await api.post(
        f"/v1/library/products/{pid}/images", files={"image": ("r.jpg", pill_image(*REF))}
    )
    views = resp.json()["views"]
    pills = api.app.state.pills
    async with api.app.state.db.pool.connection() as conn:
        before = await vectors.views_for_products(conn, pills.model_version, [pid])
        await vectors.delete_model_version(conn, pills.model_version)
        assert await vectors.views_for_products(conn, pills.model_version, [pid]) == []
    assert await pills.reembed(api.app.state.db.pool.connection) >= 1
    async with api.app.state.db.pool.connection() as conn:
        after = await vectors.views_for_products(conn, pills.model_version, [pid])
    assert len(after) == len(before) == views
    assert {v.view for v in after} == {v.view for v in before}


@pytest.mark.slow
async def test_heic_photo_from_a_phone_is_identified(api):
    """The same reference, uploaded as a phone's HEIC photo, identifies the same product."""
    import pillow_heif

    pid = await _new_product(api)
    # an image no other test enrols (the session library keeps their products)
    data = pill_image("ndc_00093-3147-01", "photo_3.jpg")
    resp = await api.post(
        f"/v1/library/products/{pid}/images", files={"image": ("ref.jpg", data, "image/jpeg")}
    )
    assert resp.status_code == 201, resp.text
    buf = io.BytesIO()
    pillow_heif.from_pillow(Image.open(io.BytesIO(data)).convert("RGB")).save(buf, quality=90)
    photo = ("IMG_0001.HEIC", buf.getvalue(), "image/heic")
    ident = await api.post("/v1/identify", files={"photo": photo})
    assert ident.status_code == 200, ident.text
    assert ident.json()["pills"][0]["candidates"][0]["product_id"] == pid
