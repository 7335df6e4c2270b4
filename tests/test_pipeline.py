import io
import json

import cv2
import numpy as np
import pytest

from core.card import Inference
from core.export import faces_table
from core.images import ImageError, load_image, to_bgr_uint8
from core.model import KeypointPredictor
from core.pipeline import Face, FacePipeline, Recentring, render
from tests.helpers import FRONTAL_SHAPE_CROP


def _png(array: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", array)
    assert ok
    return buf.tobytes()


def test_arrays_of_every_layout_become_bgr_uint8():
    gray = np.full((10, 12), 100, np.uint8)
    assert to_bgr_uint8(gray).shape == (10, 12, 3)
    assert to_bgr_uint8(gray[..., None]).shape == (10, 12, 3)
    rgba = np.zeros((10, 12, 4), np.uint8)
    rgba[..., 0] = 255  # red in RGBA order
    assert (to_bgr_uint8(rgba, "RGB")[0, 0] == (0, 0, 255)).all()
    rgb = np.zeros((10, 12, 3), np.uint8)
    rgb[..., 0] = 255
    assert (to_bgr_uint8(rgb, "RGB")[0, 0] == (0, 0, 255)).all()
    assert to_bgr_uint8(np.full((4, 4), 65535, np.uint16)).max() == 255
    assert to_bgr_uint8(np.full((4, 4, 3), 0.5, np.float32))[0, 0, 0] == 128


def test_bytes_decode_including_16_bit_png():
    img16 = np.full((20, 30, 3), 40000, np.uint16)
    out = load_image(_png(img16))
    assert out.dtype == np.uint8 and out.shape == (20, 30, 3)


@pytest.mark.parametrize("data, message", [
    (b"", "empty"),
    (b"hello, I am a text file", "not an image"),
    (_png(np.zeros((50, 50, 3), np.uint8))[:60], "corrupt|not an image"),
])
def test_bad_bytes_raise_a_clear_image_error(data, message):
    with pytest.raises(ImageError, match=message):
        load_image(data)


def test_decompression_bomb_is_refused_before_decoding():
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (9000, 9000)).save(buf, format="PNG")  # 81 MP in ~80 KB
    with pytest.raises(ImageError, match="megapixels|too large"):
        load_image(buf.getvalue())


def test_bad_arrays_raise_image_error():
    with pytest.raises(ImageError):
        to_bgr_uint8(np.zeros((0, 5), np.uint8))
    with pytest.raises(ImageError):
        to_bgr_uint8(np.zeros((5, 5, 2), np.uint8))


def test_pipeline_on_synthetic_image_maps_keypoints_into_the_box(tiny_model_path):
    pipeline = FacePipeline(tiny_model_path)
    image = np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    assert pipeline.find_faces(np.zeros((300, 400, 3), np.uint8)) == []
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    faces = pipeline.keypoints_for_boxes(gray, [(100, 50, 120, 120), (10, 10, 40, 40)])
    assert len(faces) == 2
    # what a correct pipeline guarantees: each face's points are the model's crop-pixel points for the
    # crop of its own box, scaled by side / 96 and shifted to the crop's corner (pixel centres kept)
    predicted_crop = KeypointPredictor(tiny_model_path).predict_crops(np.stack([f.crop.extract(gray) for f in faces]))
    for face, box, k_crop in zip(faces, [(100, 50, 120, 120), (10, 10, 40, 40)], predicted_crop):
        assert face.keypoints_px.shape == (15, 2) and tuple(face.box_xywh) == box
        crop = face.crop
        assert crop.side >= box[2] and crop.left <= box[0] and crop.left + crop.side >= box[0] + box[2]
        expected_px = (k_crop + 0.5) * crop.side / 96 + (crop.left, crop.top) - 0.5
        np.testing.assert_allclose(face.keypoints_px, expected_px, atol=1e-3)
    table = faces_table(faces)
    assert len(table) == 2 and "nose_tip_x" in table[0] and table[0]["box_w"] == 120
    assert [row["face"] for row in table] == [1, 2]  # the pages' "face 1", "face 2"
    from core.export import faces_dataframe, faces_json

    assert json.loads(faces_json(faces))["faces"][1]["face"] == 2
    # a tilted face's box is turned: its angle goes out with it
    tilted = [Face(faces[0].box_xywh, faces[0].keypoints_px, faces[0].crop, angle_deg=-30.0)]
    assert faces_table(tilted)[0]["box_angle_deg"] == -30.0 and table[0]["box_angle_deg"] == 0.0
    assert json.loads(faces_json(tilted))["faces"][0]["box_angle_deg"] == -30.0
    assert list(faces_dataframe([]).columns[:6]) == ["face", "box_x", "box_y", "box_w", "box_h", "box_angle_deg"]
    # a person removed face 1 on the photo page: face 2 keeps its number in the table and the JSON
    assert list(faces_dataframe(faces[1:], numbers=[2])["face"]) == [2]
    assert [f["face"] for f in json.loads(faces_json(faces[1:], numbers=[2]))["faces"]] == [2]
    # the untrained model's layout is arbitrary: draw the effects on a frontal layout in the same crops
    frontal = [Face(f.box_xywh, f.crop.to_image(FRONTAL_SHAPE_CROP), f.crop) for f in faces]
    for effect in ("keypoints", "labelled keypoints", "sunglasses", "moustache", "hat", "blur", "pixelate"):
        out = render(image, frontal, effect)
        assert out.shape == image.shape and not (out == image).all(), effect
    with pytest.raises(ValueError):
        render(image, faces, "lasers")
    # privacy first, overlay after: the hat over a hidden face is the same hat, drawn on the hidden face
    hidden_then_hat = render(image, frontal, "hat", hide=[0], privacy="pixelate")
    assert (hidden_then_hat == render(render(image, frontal, "pixelate", [0]), frontal, "hat")).all()
    assert not (hidden_then_hat == render(image, frontal, "hat")).all()


@pytest.mark.shipped_model
def test_photos_give_the_expected_face_counts(photos, app_model_path):
    pipeline = FacePipeline(app_model_path)
    assert len(pipeline.find_faces(load_image(photos / "obamas4.jpg"))) == 2
    assert len(pipeline.find_faces(load_image(photos / "streetview_no_face.jpg"))) == 0
    for name in ("james.jpg", "mona_lisa.jpg"):
        faces = pipeline.find_faces(load_image(photos / name))
        assert len(faces) == 1, name


def test_exif_orientation_is_applied():
    from PIL import Image

    img = np.zeros((40, 100, 3), np.uint8)  # landscape as stored
    img[:, :10] = 255
    buf = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    Image.fromarray(img).save(buf, format="JPEG", exif=exif, quality=95)
    out = load_image(buf.getvalue())
    assert out.shape[:2] == (100, 40)  # displayed upright: portrait
    assert out[:10].mean() > 150 and out[-10:].mean() < 50  # the bright left strip is now on top


def test_recentring_settings_come_from_the_card():
    assert Recentring.from_card(Inference()) is None
    assert Recentring.from_card(Inference(flip_average=True, recentre=None)) is None
    chosen = Inference.from_dict({"recentre": {"locator": "keypoints-locator.keras", "passes": 3,
                                               "min_offset_px": 5.0}})
    assert Recentring.from_card(chosen) == Recentring("keypoints-locator.keras", 3, 5.0)


def test_shrink_to_keeps_the_aspect_and_leaves_small_images_alone():
    from core.images import shrink_to

    big = np.zeros((3000, 4000, 3), np.uint8)
    assert shrink_to(big, 1600).shape == (1200, 1600, 3)
    small = np.zeros((100, 50, 3), np.uint8)
    assert shrink_to(small, 1600) is small
