"""The pictures kept with a pill verification: photos as submitted (or not, by setting) and
each pill cropped small, from a real photo."""

from __future__ import annotations

import io

from PIL import Image

from service.config import LimitSettings
from service.vision.pills.pictures import verification_pictures
from tests.conftest import pill_image

PHOTO = pill_image("ndc_00093-0311-01", "photo_4.jpg")


def test_photo_as_uploaded_and_the_pill_cropped_small():
    made = verification_pictures([PHOTO], [(0, 0, (100, 120, 200, 90))], LimitSettings())
    assert [(n, t) for n, t, _ in made] == [("photo-0", "image/jpeg"), ("pill-0", "image/png")]
    assert made[0][2] == PHOTO
    pill = Image.open(io.BytesIO(made[1][2]))
    assert pill.format == "PNG" and max(pill.size) <= 320
    assert pill.size[0] > pill.size[1]  # the box's own proportions, with its margin


def test_keeping_photos_can_be_turned_off_and_the_size_is_a_setting():
    limits = LimitSettings(keep_photos=False, pill_picture_px=64)
    made = verification_pictures([PHOTO, PHOTO], [(0, 1, (10, 10, 300, 300))], limits)
    assert [n for n, _, _ in made] == ["pill-0"]
    assert max(Image.open(io.BytesIO(made[0][2])).size) <= 64
