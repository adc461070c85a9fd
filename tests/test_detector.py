"""The detector stage: the contract every Detector keeps, YOLO on real rooms, user boxes and
the whole-scene fallback, and the geometry they share."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import draw_image
from PIL import Image

import detector.registry as detector_registry
from detector import (
    Detector,
    box_iou,
    covered_share,
    create_detector,
    detector_kinds,
    register_detector,
    scene_region,
    user_region,
)
from detector.base import best_first, drop_same_category_duplicates
from shopthelook.core.config import Settings
from shopthelook.core.errors import BoxError, ConfigError
from shopthelook.core.images import crop, load_image
from shopthelook.core.taxonomy import load_taxonomy
from shopthelook.core.types import Box, Detection
from shopthelook.core.yolo_model import load_yolo

# Rooms of ../shared/data/ikea used below (chosen for what YOLOv8n finds in them).
BUSY_ROOM = "ikea-a-sunny-space-for-celebrating-or-just-having-"  # 20 objects, some cups
BED_ROOM = "ikea-a-bed-that-folds-away-to-be-a-sofa-by-day"  # a bed, chairs, books (unmapped)
KITCHEN = "ikea-a-bright-kitchen-idea-with-custom-character"


@pytest.fixture(scope="module")
def taxonomy():
    return load_taxonomy()


def _det(label, box, score, taxonomy, source="detector") -> Detection:
    return Detection(
        Box(*box),
        label,
        score,
        taxonomy.category_for_label(label),
        taxonomy.search_categories(label),
        source,
    )


class ScriptedDetector(Detector):
    """A test double: returns the detections scripted for an image size, records its calls."""

    name = "scripted"

    def __init__(self, script: dict[tuple[int, int], list[Detection]], max_objects: int = 10):
        self.script = script
        self.max_objects = max_objects
        self.calls: list[tuple[int, int]] = []

    def detect(self, image: Image.Image) -> list[Detection]:
        self.calls.append(image.size)
        return best_first(self.script.get(image.size, []), self.max_objects)


# -- geometry --------------------------------------------------------------------------------


def test_box_iou():
    a = Box(0, 0, 10, 10)
    assert box_iou(a, a) == 1.0
    assert box_iou(a, Box(5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert box_iou(a, Box(10, 0, 20, 10)) == 0.0  # touching edges do not overlap
    assert box_iou(a, Box(3, 3, 3, 3)) == 0.0
    assert box_iou(Box(0, 0, 0, 0), Box(0, 0, 0, 0)) == 0.0


def test_covered_share():
    outer = Box(0, 0, 100, 100)
    assert covered_share(Box(10, 10, 20, 20), outer) == 1.0
    assert covered_share(Box(90, 0, 110, 10), outer) == pytest.approx(0.5)
    assert covered_share(Box(5, 5, 5, 5), outer) == 0.0


def test_best_first_sorts_and_caps(taxonomy):
    dets = [_det("vase", (0, 0, 5, 5), s, taxonomy) for s in (0.3, 0.9, 0.5, 0.7)]
    assert [d.score for d in best_first(dets, 3)] == [0.9, 0.7, 0.5]
    assert best_first(dets, 0) == []


def test_near_identical_boxes_of_one_category_are_merged(taxonomy):
    cup = _det("cup", (10, 10, 50, 60), 0.6, taxonomy)
    glass = _det("wine glass", (11, 10, 50, 61), 0.8, taxonomy)  # same object, other label
    assert cup.category == glass.category == "cup"
    assert drop_same_category_duplicates([cup, glass]) == [glass]
    # other categories in the same place, and the same category elsewhere, are kept
    bowl = _det("bowl", (10, 10, 50, 60), 0.5, taxonomy)
    far_cup = _det("cup", (100, 10, 140, 60), 0.4, taxonomy)
    kept = drop_same_category_duplicates([cup, glass, bowl, far_cup])
    assert kept == [glass, bowl, far_cup]
    # overlapping, but not near-identical: two chairs side by side stay two chairs
    left = _det("chair", (0, 0, 40, 40), 0.9, taxonomy)
    right = _det("chair", (10, 0, 50, 40), 0.8, taxonomy)
    assert drop_same_category_duplicates([left, right]) == [left, right]


COCO_SOME = {0: "person", 41: "cup", 46: "wine glass", 56: "chair", 57: "couch", 63: "laptop"}


def test_raw_boxes_become_sorted_categorised_detections(taxonomy):
    from detector.yolo import to_detections

    xyxy = [
        [10, 10, 50, 60],  # cup
        [11, 10, 50, 61],  # the same glass as "wine glass": merged into the better one
        [-5, 20, 80, 130],  # chair sticking out of the 100x100 image: clipped
        [0, 0, 30, 30],  # laptop: no catalog category
        [60, 60, 60, 90],  # couch with no width: dropped
        [40, 0, 90, 50],  # person
    ]
    scores = [0.5, 0.7, 0.9, 0.95, 0.8, 0.3]
    classes = [41, 46, 56, 63, 57, 0]
    common = dict(labels=COCO_SOME, size=(100, 100), taxonomy=taxonomy)
    dets = to_detections(xyxy, scores, classes, **common)
    assert [(d.label, d.category) for d in dets] == [
        ("chair", "chair"),
        ("wine glass", "cup"),
        ("person", "garment-upper"),
    ]
    assert dets[0].box == Box(0, 20, 80, 100)
    assert dets[0].search_categories == ("chair", "armchair")
    assert all(d.source == "detector" for d in dets)
    assert to_detections(xyxy, scores, classes, max_objects=2, **common) == dets[:2]
    kept = to_detections(xyxy, scores, classes, keep_unmapped=True, **common)
    assert [d.label for d in kept][:2] == ["laptop", "chair"]
    assert kept[0].category is None and kept[0].search_categories == ()
    unknown_class = to_detections([[0, 0, 9, 9]], [0.9], [999], keep_unmapped=True, **common)
    assert unknown_class[0].label == "999"
    assert to_detections([], [], [], **common) == []


# -- user boxes and the whole scene ----------------------------------------------------------


@pytest.fixture
def scene():
    return draw_image(7, (200, 100))


def test_user_box_with_a_known_category(scene, taxonomy):
    det = user_region(scene, "10,10,80,90", category="lamp", taxonomy=taxonomy)
    assert det == Detection(Box(10, 10, 80, 90), "lamp", 1.0, "lamp", ("lamp",), "user")


def test_user_box_is_clipped_to_the_image(scene, taxonomy):
    det = user_region(scene, Box(-10, 50, 300, 300), category="rug", taxonomy=taxonomy)
    assert det.box == Box(0, 50, 200, 100)


def test_user_box_outside_the_image_names_its_size(scene, taxonomy):
    with pytest.raises(BoxError, match="200x100"):
        user_region(scene, "250,10,300,50", taxonomy=taxonomy)
    with pytest.raises(BoxError, match="four numbers"):
        user_region(scene, "10,10,50", taxonomy=taxonomy)


def test_user_category_is_matched_without_case_and_blank_means_none(scene, taxonomy):
    assert user_region(scene, "1,1,50,50", category=" Sofa", taxonomy=taxonomy).category == "sofa"
    assert user_region(scene, "1,1,50,50", category="", taxonomy=taxonomy).category is None


def test_user_box_with_an_unknown_category_lists_the_known_ones(scene, taxonomy):
    with pytest.raises(BoxError) as err:
        user_region(scene, "10,10,80,90", category="spaceship", taxonomy=taxonomy)
    assert "spaceship" in str(err.value) and "chair" in str(err.value)


def test_user_box_takes_the_category_of_the_overlapping_detection(scene, taxonomy):
    chair = _det("chair", (20, 20, 80, 95), 0.6, taxonomy)
    couch = _det("couch", (90, 10, 190, 90), 0.9, taxonomy)
    fake = ScriptedDetector({(200, 100): [chair, couch]})
    det = user_region(scene, "15,15,85,95", taxonomy=taxonomy, detector=fake)
    assert (det.label, det.category, det.source) == ("chair", "chair", "user")
    assert det.search_categories == ("chair", "armchair")
    assert det.box == Box(15, 15, 85, 95)  # the user's box, not the detector's
    assert fake.calls == [(200, 100)]


def test_user_box_around_a_small_object_takes_its_category(scene, taxonomy):
    vase = _det("vase", (100, 40, 110, 60), 0.5, taxonomy)  # IoU with the box is small
    det = user_region(scene, "60,0,200,100", taxonomy=taxonomy, detections=[vase])
    assert det.category == "vase"


def test_user_box_prefers_the_best_overlap_over_the_best_score(scene, taxonomy):
    table = _det("dining table", (0, 0, 200, 100), 0.95, taxonomy)
    bowl = _det("bowl", (40, 40, 80, 70), 0.4, taxonomy)
    det = user_region(scene, "38,38,82,72", taxonomy=taxonomy, detections=[table, bowl])
    assert det.category == "bowl"


def test_user_box_falls_back_to_detecting_in_its_crop(scene, taxonomy):
    box = Box(120, 20, 180, 80)
    crop_size = crop(scene, box, 0.1).size
    clock = _det("clock", (5, 5, 60, 60), 0.7, taxonomy)
    fake = ScriptedDetector({crop_size: [clock]})  # nothing on the whole scene
    det = user_region(scene, box, taxonomy=taxonomy, detector=fake)
    assert det.category == "clock" and det.box == box
    assert fake.calls == [(200, 100), crop_size]


def test_user_box_reuses_detections_the_caller_already_has(scene, taxonomy):
    fake = ScriptedDetector({})
    det = user_region(scene, "10,10,50,50", taxonomy=taxonomy, detector=fake, detections=[])
    assert fake.calls == [crop(scene, Box(10, 10, 50, 50), 0.1).size]  # only the crop
    assert det.category is None


def test_user_box_with_nothing_recognised_searches_every_category(scene, taxonomy):
    det = user_region(scene, "10,10,50,50", taxonomy=taxonomy)
    assert det.category is None and det.search_categories == () and det.source == "user"
    fake = ScriptedDetector({(200, 100): [_det("book", (10, 10, 50, 50), 0.9, taxonomy)]})
    assert user_region(scene, "10,10,50,50", taxonomy=taxonomy, detector=fake).category is None


def test_scene_region_is_the_whole_image(scene):
    det = scene_region(scene)
    assert det.box == Box(0, 0, 200, 100)
    assert (det.label, det.category, det.search_categories, det.source) == (
        "scene",
        None,
        (),
        "scene",
    )


# -- factory, weights and settings -----------------------------------------------------------


def test_unknown_detector_kind(taxonomy):
    with pytest.raises(ConfigError, match="unknown detector 'nope'.*yolo"):
        create_detector(Settings(), taxonomy, kind="nope")


def test_registered_kinds_are_built_by_the_factory(taxonomy):
    built = []

    @register_detector("scripted-test")
    def _factory(settings, tax):
        built.append((settings.max_objects, tax))
        return ScriptedDetector({}, settings.max_objects)

    try:
        made = create_detector(Settings(max_objects=3), taxonomy, kind="scripted-test")
        assert isinstance(made, ScriptedDetector) and made.max_objects == 3
        assert built == [(3, taxonomy)]
    finally:
        detector_registry._REGISTRY.pop("scripted-test")


def test_missing_or_corrupt_weights_are_config_errors(tmp_path, taxonomy):
    with pytest.raises(ConfigError, match="no such file"):
        load_yolo(tmp_path / "none" / "weights.pt")
    bad = tmp_path / "bad.pt"
    bad.write_text("not a model")
    with pytest.raises(ConfigError, match="cannot be loaded"):
        load_yolo(bad)


@pytest.mark.parametrize(
    "option", [{"confidence": 1.5}, {"iou": 0}, {"image_size": 8}, {"max_objects": 0}]
)
def test_bad_yolo_options_are_config_errors(option, taxonomy):
    from detector.yolo import YoloDetector

    with pytest.raises(ConfigError, match=next(iter(option))):
        YoloDetector("unused.pt", taxonomy, **option)


# -- the contract every Detector keeps (tested on real weights) --------------------------------

#: kind -> builder(request, taxonomy, max_objects); every registered kind must be listed here
IMPLEMENTATIONS = {
    "yolo": lambda request, taxonomy, max_objects: _yolo(
        request.getfixturevalue("yolo_weights"), taxonomy, max_objects=max_objects
    ),
    "zero-shot": lambda request, taxonomy, max_objects: _taught(
        None, request.getfixturevalue("yolo_weights"), taxonomy, max_objects
    ),
    "taught": lambda request, taxonomy, max_objects: _taught(
        request.getfixturevalue("ikea_root"),
        request.getfixturevalue("yolo_weights"),
        taxonomy,
        max_objects,
    ),
}


def _taught(ikea_root: Path | None, weights: Path, taxonomy, max_objects: int):
    """The catalog-taught detector (a small cached IKEA fit), or the zero-shot mapping."""
    from catalog.taught import load_detector_folder, zero_shot_detector
    from catalog.taught.files import detector_folder

    # a low threshold and 3 objects per category: the contract needs more than 3 objects in
    # the busy room, and the small test fit (8 photos per category, 40 scenes) names only
    # 3-4 categories there above 0.02
    settings = Settings(
        detector_weights=str(weights),
        max_objects=max_objects,
        taught_min_score=0.05,
        taught_per_category=3,
        threads=1,
    )
    if ikea_root is None:
        return zero_shot_detector(settings, taxonomy)
    from tests.taught_helpers import taught_catalog

    folder = detector_folder(taught_catalog(ikea_root, weights))
    return load_detector_folder(folder, settings, taxonomy)


def _yolo(weights: Path, taxonomy, **options):
    from detector.yolo import YoloDetector

    return YoloDetector(weights, taxonomy, **options)


def test_every_registered_kind_is_under_contract():
    assert set(detector_kinds()) <= set(IMPLEMENTATIONS)


def _room(ikea_root: Path, prefix: str) -> Image.Image:
    matches = sorted((ikea_root / "rooms").glob(prefix + "*.jpg"))
    if not matches:
        pytest.skip(f"room {prefix}* is not in {ikea_root / 'rooms'}")
    return load_image(matches[0])


def _assert_contract(dets: list[Detection], image: Image.Image, max_objects: int, taxonomy):
    assert len(dets) <= max_objects
    scores = [d.score for d in dets]
    assert scores == sorted(scores, reverse=True)
    width, height = image.size
    for d in dets:
        assert isinstance(d, Detection) and d.source == "detector"
        assert 0.0 <= d.score <= 1.0
        assert 0 <= d.box.x1 < d.box.x2 <= width and 0 <= d.box.y1 < d.box.y2 <= height
        assert d.category in taxonomy.categories
        assert d.search_categories and d.search_categories[0] == d.category


def _same_objects(a: list[Detection], b: list[Detection]) -> bool:
    """Equal up to the small numeric differences of batched vs single inference."""
    return len(a) == len(b) and all(
        x.label == y.label and abs(x.score - y.score) < 0.05 and box_iou(x.box, y.box) > 0.9
        for x, y in zip(a, b, strict=True)
    )


@pytest.mark.shared
@pytest.mark.parametrize("kind", sorted(IMPLEMENTATIONS))
def test_detector_contract(kind, request, taxonomy, ikea_root):
    room = _room(ikea_root, BUSY_ROOM)
    few = IMPLEMENTATIONS[kind](request, taxonomy, 3)
    many = IMPLEMENTATIONS[kind](request, taxonomy, 10)
    capped, uncapped = few.detect(room), many.detect(room)
    _assert_contract(capped, room, 3, taxonomy)
    _assert_contract(uncapped, room, 10, taxonomy)
    assert len(capped) == 3 and len(uncapped) > 3  # a busy room: the cap is what cut it
    assert capped == uncapped[:3]
    assert many.detect(room) == uncapped  # deterministic
    # other image modes are made RGB first; batches give what single calls give
    assert many.detect(room.convert("L")) == many.detect(room.convert("L").convert("RGB"))
    blank = Image.new("RGB", (320, 240), (240, 240, 240))
    batch = many.detect_many([room, blank])
    assert len(batch) == 2 and _same_objects(batch[0], uncapped)
    assert _same_objects(batch[1], many.detect(blank))
    assert many.detect_many([]) == []
    for seed in range(3):
        small = draw_image(seed)
        _assert_contract(many.detect(small), small, 10, taxonomy)


# -- YOLO on real rooms ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def yolo(yolo_weights, taxonomy):
    return _yolo(yolo_weights, taxonomy, max_objects=10, threads=2)


@pytest.mark.shared
def test_real_room_gives_mapped_objects(yolo, ikea_root):
    room = _room(ikea_root, KITCHEN)
    dets = yolo.detect(room)
    categories = {d.category for d in dets}
    assert {"chair", "table", "oven"} <= categories, [(d.label, d.score) for d in dets]
    chair = next(d for d in dets if d.label == "chair")
    assert chair.search_categories == ("chair", "armchair")


@pytest.mark.shared
def test_unmapped_labels_are_dropped_unless_asked_for(yolo, yolo_weights, taxonomy, ikea_root):
    room = _room(ikea_root, BED_ROOM)
    assert all(d.category is not None for d in yolo.detect(room))
    keep = _yolo(yolo_weights, taxonomy, max_objects=50, keep_unmapped=True)
    everything = keep.detect(room)
    unmapped = [d for d in everything if d.category is None]
    assert unmapped and all(d.search_categories == () for d in unmapped)
    assert {d.label for d in unmapped} == {"book"}
    assert [d for d in everything if d.category is not None][:10] == yolo.detect(room)


@pytest.mark.shared
def test_torch_threads_are_restored_after_detect(yolo, ikea_root):
    room = _room(ikea_root, KITCHEN)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)  # what ultralytics leaves behind
        yolo.detect(room)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.shared
def test_empty_picture_gives_nothing_and_the_scene_fallback(yolo):
    for picture in (Image.new("RGB", (640, 480), (250, 250, 245)), draw_image(4, (320, 240))):
        assert yolo.detect(picture) == []
        fallback = scene_region(picture)
        assert fallback.box == Box(0, 0, *picture.size) and fallback.source == "scene"


@pytest.mark.shared
def test_tiny_and_odd_images_do_not_break_the_detector(yolo):
    for size in ((1, 1), (3, 3), (2000, 40)):
        assert yolo.detect(Image.new("RGB", size, (90, 60, 30))) == []


@pytest.mark.shared
def test_user_box_on_a_real_room(yolo, taxonomy, ikea_root):
    room = _room(ikea_root, KITCHEN)
    chair = next(d for d in yolo.detect(room) if d.label == "chair")
    drawn = chair.box.expanded(0.05, *room.size)
    det = user_region(room, drawn, taxonomy=taxonomy, detector=yolo)
    assert (det.category, det.source, det.box) == ("chair", "user", drawn)


@pytest.mark.shared
def test_factory_uses_the_settings(yolo_weights, taxonomy):
    settings = Settings(
        detector_weights=str(yolo_weights), max_objects=4, detection_confidence=0.4, threads=2
    )
    made = create_detector(settings, taxonomy)
    assert made.name == "yolo" and made.max_objects == 4 and made.confidence == 0.4
    assert made.taxonomy is taxonomy
    assert create_detector(settings).taxonomy.categories == taxonomy.categories
