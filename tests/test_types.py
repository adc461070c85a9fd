"""Box parsing, validation against an image, growing; result dictionaries."""

from __future__ import annotations

import pytest

from shopthelook.core.errors import BoxError
from shopthelook.core.types import Box, Detection, LookObject, LookResult, ProductHit


@pytest.mark.parametrize(
    "text, expected",
    [
        ("10,20,30,40", Box(10, 20, 30, 40)),
        (" 10 , 20 ,30, 40 ", Box(10, 20, 30, 40)),
        ("1.5,2.25,3.5,4.75", Box(1.5, 2.25, 3.5, 4.75)),
        ("[10, 20, 30, 40]", Box(10, 20, 30, 40)),
        ("(0,0,5,5)", Box(0, 0, 5, 5)),
        ("-5,-5,10,10", Box(-5, -5, 10, 10)),
    ],
)
def test_parse_accepts_four_numbers(text, expected):
    assert Box.parse(text) == expected


@pytest.mark.parametrize(
    "text", ["", "1,2,3", "1,2,3,4,5", "a,b,c,d", "1;2;3;4", "1,2,,4", "nan,0,10,10", "0,0,inf,5"]
)
def test_parse_rejects_malformed_text_with_the_text_in_the_message(text):
    with pytest.raises(BoxError) as err:
        Box.parse(text)
    assert repr(text) in str(err.value)


def test_geometry():
    b = Box(10, 20, 40, 60)
    assert (b.width, b.height, b.area) == (30, 40, 1200)
    assert Box(5, 5, 1, 1).area == 0  # an inverted box has no area, not a negative one
    assert Box(1.04, 2.06, 3.0, 4.71).as_list() == [1.0, 2.1, 3.0, 4.7]


def test_validated_keeps_a_box_inside_the_image():
    assert Box(10, 10, 50, 40).validated(100, 80) == Box(10, 10, 50, 40)


def test_validated_clips_a_box_that_sticks_out():
    assert Box(-20, -5, 150, 60).validated(100, 80) == Box(0, 0, 100, 60)


@pytest.mark.parametrize(
    "box",
    [Box(200, 10, 300, 50), Box(-50, -50, -10, -10), Box(10, 90, 50, 120), Box(99, 0, 150, 50)],
)
def test_validated_refuses_a_box_outside_the_image_and_names_its_size(box):
    with pytest.raises(BoxError) as err:
        box.validated(100, 80)
    assert "100x80" in str(err.value)


@pytest.mark.parametrize("box", [Box(50, 10, 10, 40), Box(10, 40, 50, 40), Box(10, 10, 10, 10)])
def test_validated_refuses_inverted_or_empty_boxes(box):
    with pytest.raises(BoxError) as err:
        box.validated(100, 80)
    assert "must exceed" in str(err.value)


def test_validated_refuses_a_sliver_below_the_minimum_side():
    with pytest.raises(BoxError):
        Box(10, 10, 11, 50).validated(100, 80)
    assert Box(10, 10, 11, 50).validated(100, 80, min_side=1.0) == Box(10, 10, 11, 50)


def test_expanded_grows_each_side_by_the_margin():
    assert Box(20, 20, 60, 40).expanded(0.25, 100, 100) == Box(10, 15, 70, 45)


def test_expanded_is_clipped_to_the_image():
    assert Box(0, 5, 90, 50).expanded(0.5, 100, 60) == Box(0, 0, 100, 60)


def test_expanded_by_zero_is_the_same_box():
    assert Box(1, 2, 3, 4).expanded(0.0, 10, 10) == Box(1, 2, 3, 4)


def test_look_result_to_dict_round_numbers_and_nests_objects():
    det = Detection(Box(1.04, 2, 30, 40), "chair", 0.87654, "chair", ("chair", "armchair"))
    hit = ProductHit("p1", 0.1234567, "chair", name="ODGER", reason="similar shape")
    result = LookResult("room.jpg", 64, 48, [LookObject(det, [hit])], message="note")
    out = result.to_dict()
    assert out["width"] == 64 and out["message"] == "note"
    obj = out["objects"][0]
    assert obj["box"] == [1.0, 2.0, 30.0, 40.0]
    assert obj["score"] == 0.8765 and obj["source"] == "detector"
    assert obj["products"] == [
        {
            "product_id": "p1",
            "score": 0.12346,
            "category": "chair",
            "name": "ODGER",
            "reason": "similar shape",
        }
    ]
    assert "message" not in LookResult("x", 1, 1).to_dict()
